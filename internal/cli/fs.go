package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/endpoint"
	"github.com/berth-project/berth/internal/fsmount"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/server"
)

func fsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fs", Short: "Shared file systems: create, ls, rm, mount, umount, fsck, mount targets, access points"}

	f := &userFlags{}
	create := &cobra.Command{Use: "create NAME", Short: "Create a shared file system", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			var out server.FSList
			if err := f.post(cmd.Context(), "/berth/v1/fs/create", &server.FSCreateRequest{Name: a[0]}, &out); err != nil {
				return err
			}
			return f.printFS(cmd, out.FileSystems)
		}}
	f.register(create)

	lf := &userFlags{}
	ls := &cobra.Command{Use: "ls [FS_ID]", Short: "List shared file systems", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref := &server.FSRef{}
			if len(a) == 1 {
				ref.ID = a[0]
			}
			var out server.FSList
			if err := lf.post(cmd.Context(), "/berth/v1/fs/describe", ref, &out); err != nil {
				return err
			}
			return lf.printFS(cmd, out.FileSystems)
		}}
	lf.register(ls)

	rf := &userFlags{}
	rm := &cobra.Command{Use: "rm FS_ID", Short: "Delete a shared file system and all its data", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return rf.post(cmd.Context(), "/berth/v1/fs/delete", &server.FSRef{ID: a[0]}, &server.FSList{})
		}}
	rf.register(rm)

	cf := &userFlags{}
	var repair bool
	fsck := &cobra.Command{Use: "fsck FS_ID", Short: "Check a file system's metadata and chunk references", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			var rep struct {
				server.FSRef
				Inodes, Entries, Blocks, Chunks, InFlightChunks, Orphans, Repaired int
				Problems                                                           []string
			}
			if err := cf.post(cmd.Context(), "/berth/v1/fs/fsck", &server.FSRef{ID: a[0], Repair: repair}, &rep); err != nil {
				return err
			}
			if cf.json() {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %d inodes, %d entries, %d blocks, %d chunks (%d in flight), %d orphans\n",
				a[0], rep.Inodes, rep.Entries, rep.Blocks, rep.Chunks, rep.InFlightChunks, rep.Orphans)
			for _, p := range rep.Problems {
				fmt.Fprintln(w, "problem:", p)
			}
			if repair {
				fmt.Fprintf(w, "repaired %d\n", rep.Repaired)
			}
			if len(rep.Problems) > 0 && !repair {
				return fmt.Errorf("%d problems found (run with --repair to fix what can be fixed)", len(rep.Problems))
			}
			if len(rep.Problems) == 0 {
				fmt.Fprintln(w, "clean")
			}
			return nil
		}}
	cf.register(fsck)
	fsck.Flags().BoolVar(&repair, "repair", false, "fix what can be fixed safely")

	mf := &userFlags{}
	var detach, debug, useTLS bool
	var logFile, accessPoint, caFile, zone, cacheDir string
	var cacheSize int64
	var maxInodes int
	mount := &cobra.Command{Use: "mount FS_ID MOUNTPOINT", Short: "Mount a shared file system (in the foreground, or --detach)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			if detach {
				return mountDetached(cmd, a, logFile)
			}
			o := fsmount.Options{Endpoint: mf.endpoint, FS: a[0], Mountpoint: a[1], Log: logger(), Debug: debug || os.Getenv("BERTH_FUSE_DEBUG") != "",
				AccessPoint: accessPoint, Zone: zone, Token: os.Getenv("BERTH_MOUNT_TOKEN"), CacheDir: cacheDir, CacheSize: cacheSize, MaxInodes: maxInodes}
			if o.CacheDir != "" && o.CacheSize <= 0 {
				o.CacheSize = fsmount.DefaultCacheSize(o.CacheDir)
			}
			if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
				o.Credentials = &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
			}
			if caFile != "" {
				useTLS = true
			}
			if useTLS {
				ca, err := loadCA(cmd.Context(), mf.endpoint, caFile)
				if err != nil {
					return err
				}
				o.CA = ca
			}
			_, statErr := os.Stat(a[1])
			made := errors.Is(statErr, os.ErrNotExist)
			if err := os.MkdirAll(a[1], 0o755); err != nil {
				return err
			}
			m, err := fsmount.Start(cmd.Context(), o)
			if err != nil {
				if made {
					os.Remove(a[1]) // the directory this command made
				}
				if os.Getenv(fsproto.ReadyEnv) != "" {
					// Whoever started this mount says why it failed.
					if p := os.NewFile(3, "ready"); p != nil {
						fsproto.WriteReady(p, err)
						p.Close()
					}
				}
				return err
			}
			if os.Getenv(fsproto.ReadyEnv) != "" {
				if p := os.NewFile(3, "ready"); p != nil {
					fsproto.WriteReady(p, nil)
					p.Close()
				}
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			select {
			case <-sig:
				return m.Unmount()
			case <-m.Done():
				return nil
			}
		}}
	mf.register(mount)
	mount.Flags().BoolVarP(&detach, "detach", "d", false, "serve the mount from a background process and return once it is mounted")
	mount.Flags().StringVar(&logFile, "log", "", "with --detach: the mount process's log file")
	mount.Flags().BoolVar(&debug, "debug", false, "log every FUSE request")
	mount.Flags().StringVar(&accessPoint, "access-point", "", "mount through this access point (its identity and root directory)")
	mount.Flags().BoolVar(&useTLS, "tls", false, "carry the mount's traffic over TLS (the server's CA: --ca, or fetched from the server)")
	mount.Flags().StringVar(&caFile, "ca", "", "PEM file of the server's CA (implies --tls)")
	mount.Flags().StringVar(&zone, "zone", "", "the zone this host is in (a task's mount: from its token)")
	mount.Flags().StringVar(&cacheDir, "cache-dir", fsmount.DefaultCacheDir(), "keep fetched chunks here, shared by every mount on this host (empty: memory only)")
	mount.Flags().IntVar(&maxInodes, "max-inodes", fsmount.DefaultMaxInodes, "files and directories the mount keeps for the kernel (about 250 bytes each); past it the kernel is asked to forget idle ones (-1: no bound)")
	mount.Flags().Int64Var(&cacheSize, "cache-size", 0, "bytes the chunk cache on disk may hold (default: a tenth of the free space there, at most 10 GiB)")

	umount := &cobra.Command{Use: "umount MOUNTPOINT", Short: "Unmount a shared file system (its process then exits)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := unix.Unmount(a[0], 0); err != nil {
				return fmt.Errorf("unmount %s: %w", a[0], err)
			}
			return nil
		}}
	cmd.AddCommand(create, ls, rm, fsck, mount, umount, mountTargetCmd(), accessPointCmd())
	return cmd
}

// mountDetached starts the mount in a process of its own (its own session,
// so the caller's exit does not end it) and waits until it is mounted.
func mountDetached(cmd *cobra.Command, a []string, logFile string) error {
	var args []string
	for _, x := range os.Args[1:] {
		if x != "--detach" && x != "-d" {
			args = append(args, x)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), fsproto.ReadyEnv+"=3")
	c.ExtraFiles = []*os.File{w}
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if logFile != "" {
		lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer lf.Close()
		c.Stdout, c.Stderr = lf, lf
	}
	if err := c.Start(); err != nil {
		return err
	}
	w.Close()
	ready := make(chan string, 1)
	go func() {
		ok, why := fsproto.ReadReady(r)
		if ok {
			why = "ok"
		} else if why == "" {
			why = "the mount process exited before mounting (see --log)"
		}
		ready <- why
	}()
	ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
	defer cancel()
	select {
	case why := <-ready:
		if why != "ok" {
			c.Wait()
			return fmt.Errorf("mount %s on %s: %s", a[0], a[1], why)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "mounted %s on %s (pid %d)\n", a[0], a[1], c.Process.Pid)
		c.Process.Release()
		return nil
	case <-ctx.Done():
		c.Process.Kill()
		return fmt.Errorf("timed out mounting %s", a[1])
	}
}

// loadCA reads the server's CA certificate from a file or, without one,
// from the server itself (trust on first use: give --ca off loopback).
func loadCA(ctx context.Context, server, file string) ([]byte, error) {
	if file != "" {
		return os.ReadFile(file)
	}
	servers, err := endpoint.Parse(server)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, servers.Current()+"/berth/v1/ca", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the server's CA: %w", err)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func (f *userFlags) printFS(cmd *cobra.Command, fss []server.FSDescription) error {
	if f.json() {
		// Times as RFC 3339, not the nanoseconds the record keeps.
		type fsJSON struct {
			server.FSDescription
			CreatedAt string `json:"createdAt"`
		}
		out := []fsJSON{}
		for _, fs := range fss {
			out = append(out, fsJSON{FSDescription: fs, CreatedAt: time.Unix(0, fs.CreatedAt).UTC().Format(time.RFC3339Nano)})
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE SYSTEM\tNAME\tSIZE\tINODES\tMOUNTS\tCREATED")
	for _, d := range fss {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", d.ID, d.Name, d.SizeInBytes, d.Inodes, d.Mounts, time.Unix(0, d.CreatedAt).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
