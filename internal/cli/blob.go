package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/backend"
	"github.com/berth-project/berth/internal/blob/file"
)

func blobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "blob", Short: "The blob store: copy a cluster's data to another store"}
	var from, to, dataDir string
	cp := &cobra.Command{Use: "copy", Short: "Copy every object from one store to another, verifying each; run again to resume", Args: cobra.NoArgs,
		Long: `Copy every object from one blob store to another, verifying each, and
skip what the destination already holds, so an interrupted copy resumes.
To move a cluster that kept its data in its data dir onto S3:

  berth blob copy --data-dir ~/.berth --to 's3://BUCKET/PREFIX?endpoint=…'

copies its snapshots (DATA_DIR/blobs) and its file systems' chunks
(DATA_DIR/fs-chunks, as fs/…) into the names a server started with that
--blob-store reads. Stop the server (or let no writes happen) meanwhile,
then start it with --blob-store.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" || (from == "") == (dataDir == "") {
				return fmt.Errorf("give --to and one of --from or --data-dir; stores: %s", backend.Forms)
			}
			dst, err := backend.Open(cmd.Context(), to)
			if err != nil {
				return err
			}
			type pair struct {
				from blob.Objects
				to   blob.Objects
			}
			var pairs []pair
			if dataDir != "" {
				pairs = append(pairs, pair{file.New(filepath.Join(dataDir, "blobs")), dst},
					pair{file.New(filepath.Join(dataDir, "fs-chunks")), blob.Prefixed{Objects: dst, Prefix: "fs/"}})
			} else {
				src, err := backend.Open(cmd.Context(), from)
				if err != nil {
					return err
				}
				pairs = append(pairs, pair{src, dst})
			}
			for _, p := range pairs {
				last := 0
				st, err := blob.Copy(cmd.Context(), p.from, p.to, "", func(st blob.CopyStats) {
					if st.Copied-last >= 1000 {
						last = st.Copied
						fmt.Fprintf(cmd.OutOrStdout(), "  %d objects copied (%d MiB)\n", st.Copied, st.Bytes>>20)
					}
				})
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s: %d copied (%d MiB), %d already there\n", p.from, p.to, st.Copied, st.Bytes>>20, st.Skipped)
				if err != nil {
					return err
				}
			}
			return nil
		}}
	cp.Flags().StringVar(&from, "from", "", "the store to copy from (file:///PATH or s3://…)")
	cp.Flags().StringVar(&to, "to", "", "the store to copy to")
	cp.Flags().StringVar(&dataDir, "data-dir", "", "copy a server's data dir (its snapshots and file system chunks) instead of --from")
	cmd.AddCommand(cp)
	return cmd
}
