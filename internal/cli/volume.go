package cli

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/agentapi"
)

// post calls one of Berth's own JSON endpoints, signed with
// $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY when set, as the SDK's calls are.
func (f *userFlags) post(ctx context.Context, path string, in, out any) error {
	c := &agent.Client{Endpoint: f.endpoint}
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		c.Credentials = &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	}
	if err := c.Post(ctx, path, in, out); err != nil {
		return friendly(err)
	}
	return nil
}

func volumeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Block volumes: create, ls, describe, rm, detach"}
	f := &userFlags{}
	var zone, fs, vtype, snap string
	var size int32
	var wait bool
	create := &cobra.Command{
		Use: "create", Short: "Create a block volume in a zone (optionally from a snapshot)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &agentapi.CreateVolumeRequest{Cluster: f.cluster, Zone: zone, VolumeType: vtype, FilesystemType: fs, SnapshotID: snap}
			if size > 0 {
				req.SizeInGiB = &size
			}
			var out agentapi.VolumesResponse
			if err := f.post(cmd.Context(), "/berth/v1/volumes/create", req, &out); err != nil {
				return err
			}
			if wait && len(out.Volumes) == 1 {
				// The volume is made (or restored) by an agent in its
				// zone; follow it, with the restore's progress.
				p := newProgress(cmd.ErrOrStderr())
				id := out.Volumes[0].VolumeID
				for out.Volumes[0].State == "creating" {
					line := "creating " + id
					if r := out.Volumes[0].StateReason; r != "" {
						line += ": " + r
					}
					p.show(line)
					select {
					case <-cmd.Context().Done():
						return cmd.Context().Err()
					case <-time.After(500 * time.Millisecond):
					}
					if err := f.post(cmd.Context(), "/berth/v1/volumes/describe", &agentapi.VolumesRequest{Cluster: f.cluster, VolumeIDs: []string{id}}, &out); err != nil {
						return err
					}
					if len(out.Volumes) != 1 {
						return fmt.Errorf("volume %s is gone", id)
					}
				}
				p.done()
				if out.Volumes[0].State == "error" {
					return fmt.Errorf("volume %s failed: %s", id, out.Volumes[0].StateReason)
				}
			}
			return f.printVolumes(cmd, out.Volumes)
		},
	}
	f.register(create)
	create.Flags().BoolVar(&wait, "wait", true, "wait until the volume is made (restored), showing the restore's progress")
	create.Flags().StringVar(&zone, "zone", "", "availability zone (required)")
	create.Flags().Int32Var(&size, "size", 0, "size in GiB (default: the snapshot's)")
	create.Flags().StringVar(&fs, "fs", "", "file system: xfs (default), ext4 or ext3")
	create.Flags().StringVar(&vtype, "type", "", "volume type (default gp3)")
	create.Flags().StringVar(&snap, "from-snapshot", "", "restore from this snapshot")

	simple := func(use, short, path string, args cobra.PositionalArgs) *cobra.Command {
		g := &userFlags{}
		c := &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, a []string) error {
			var out agentapi.VolumesResponse
			if err := g.post(cmd.Context(), path, &agentapi.VolumesRequest{Cluster: g.cluster, VolumeIDs: a}, &out); err != nil {
				return err
			}
			return g.printVolumes(cmd, out.Volumes)
		}}
		g.register(c)
		return c
	}
	cmd.AddCommand(create,
		simple("ls", "List block volumes", "/berth/v1/volumes/describe", cobra.NoArgs),
		simple("describe VOLUME...", "Describe block volumes", "/berth/v1/volumes/describe", cobra.MinimumNArgs(1)),
		simple("rm VOLUME", "Delete a detached block volume", "/berth/v1/volumes/delete", cobra.ExactArgs(1)),
		simple("detach VOLUME", "Detach a volume whose instance lost its lease (its task is stopped)", "/berth/v1/volumes/detach", cobra.ExactArgs(1)),
	)
	return cmd
}

func (f *userFlags) printVolumes(cmd *cobra.Command, vs []agentapi.Volume) error {
	if f.json() {
		return printECS(cmd.OutOrStdout(), vs)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tZONE\tSIZE\tFS\tSTATE\tINSTANCE\tATTACHED TO\tSNAPSHOT")
	for _, v := range vs {
		att := "-"
		if v.Attachment != nil {
			att = shortID(v.Attachment.TaskArn)
		}
		state := v.State
		if v.StateReason != "" {
			state += " (" + v.StateReason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d GiB\t%s\t%s\t%s\t%s\t%s\n", v.VolumeID, v.Zone, v.SizeInGiB, v.FilesystemType, state, v.InstanceID, att, dash(v.SnapshotID))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Snapshots of block volumes: create, ls, rm"}
	f := &userFlags{}
	var wait bool
	create := &cobra.Command{
		Use: "create VOLUME", Short: "Snapshot a volume (incremental, crash-consistent; its task keeps running)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			var out agentapi.SnapshotsResponse
			if err := f.post(cmd.Context(), "/berth/v1/snapshots/create", &agentapi.SnapshotsRequest{Cluster: f.cluster, VolumeID: a[0]}, &out); err != nil {
				return err
			}
			p := newProgress(cmd.ErrOrStderr())
			for wait && out.Snapshots[0].State == "pending" {
				p.show("taking " + out.Snapshots[0].SnapshotID + " of " + a[0] + " …")
				time.Sleep(300 * time.Millisecond)
				id := out.Snapshots[0].SnapshotID
				if err := f.post(cmd.Context(), "/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{Cluster: f.cluster, SnapshotIDs: []string{id}}, &out); err != nil {
					return err
				}
			}
			p.done()
			return f.printSnapshots(cmd, out.Snapshots)
		},
	}
	f.register(create)
	create.Flags().BoolVar(&wait, "wait", true, "wait until the snapshot completes")
	g := &userFlags{}
	ls := &cobra.Command{Use: "ls", Short: "List snapshots", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		var out agentapi.SnapshotsResponse
		if err := g.post(cmd.Context(), "/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{Cluster: g.cluster}, &out); err != nil {
			return err
		}
		return g.printSnapshots(cmd, out.Snapshots)
	}}
	g.register(ls)
	h := &userFlags{}
	rm := &cobra.Command{Use: "rm SNAPSHOT", Short: "Delete a snapshot (chunks other snapshots share stay)", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		var out agentapi.SnapshotsResponse
		if err := h.post(cmd.Context(), "/berth/v1/snapshots/delete", &agentapi.SnapshotsRequest{Cluster: h.cluster, SnapshotIDs: a}, &out); err != nil {
			return err
		}
		return h.printSnapshots(cmd, out.Snapshots)
	}}
	h.register(rm)
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func (f *userFlags) printSnapshots(cmd *cobra.Command, ss []agentapi.Snapshot) error {
	if f.json() {
		return printECS(cmd.OutOrStdout(), ss)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tVOLUME\tSIZE\tFS\tSTATE\tUPLOADED\tCREATED")
	for _, s := range ss {
		state := s.State
		if s.StateReason != "" {
			state += " (" + s.StateReason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d GiB\t%s\t%s\t%d MiB\t%s\n", s.SnapshotID, s.VolumeID, s.SizeInGiB, s.FilesystemType, state, s.UploadedBytes>>20, s.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
