package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/spec"
)

// EFS volumes: the agent asks the server for a mount token for the task's
// volume, starts `berth fs mount` in a process of its own (so restarting
// the agent never breaks a running task's files) and binds the mount into
// the containers. Stopping the task unmounts it, which ends the process.

func (a *Agent) efsPath(taskID, volume string) string {
	return filepath.Join(a.cfg.DataDir, "efs", taskID, volume)
}

func isMountpoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(p, &st) != nil || unix.Stat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

func (r *runner) mountEFS(ctx context.Context, name string, cfg *spec.EFSVolumeConfiguration) (string, error) {
	mp := r.a.efsPath(r.id, name)
	if isMountpoint(mp) {
		return mp, nil // mounted before an agent restart
	}
	fs := spec.Val(cfg.FileSystemId)
	fail := func(format string, args ...any) (string, error) {
		return "", volumeError("EFS file system %s for volume '%s': %s", fs, name, fmt.Sprintf(format, args...))
	}
	var grant agentapi.EFSMountResponse
	if err := r.a.api.Post(ctx, "/berth/v1/agent/efs-mount", &agentapi.EFSMountRequest{Cluster: r.a.cfg.Cluster, ContainerInstance: r.a.arn, Task: r.arn, Volume: name}, &grant); err != nil {
		return fail("%v", err)
	}
	if err := r.a.startMount(fs, mp, &grant); err != nil {
		return fail("%v", err)
	}
	return mp, nil
}

// mountFSx mounts a task's FSx for Windows File Server volume on this
// Linux instance: the server checks the task's credentials against the
// share's users and grants a mount of the backing file system confined to
// the volume's rootDirectory.
func (r *runner) mountFSx(ctx context.Context, name string, cfg *spec.FSxWindowsFileServerVolumeConfiguration) (string, error) {
	mp := r.a.efsPath(r.id, name)
	if isMountpoint(mp) {
		return mp, nil // mounted before an agent restart
	}
	fs := spec.Val(cfg.FileSystemId)
	var grant agentapi.EFSMountResponse
	if err := r.a.api.Post(ctx, "/berth/v1/agent/fsx-mount", &agentapi.EFSMountRequest{Cluster: r.a.cfg.Cluster, ContainerInstance: r.a.arn, Task: r.arn, Volume: name}, &grant); err != nil {
		return "", volumeError("FSx file system %s for volume '%s': %v", fs, name, err)
	}
	if err := r.a.startMount(fs, mp, &grant); err != nil {
		return "", volumeError("FSx file system %s for volume '%s': %v", fs, name, err)
	}
	return mp, nil
}

// startMount starts `berth fs mount` of file system fs at mp with a grant,
// in a process (and session) of its own that outlives this agent, and
// waits for the mount's ready word.
func (a *Agent) startMount(fs, mp string, grant *agentapi.EFSMountResponse) error {
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return err
	}
	bin := a.cfg.MountBinary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	args := []string{"fs", "mount", fs, mp, "--endpoint", a.cfg.Server, "--zone", grant.Zone}
	if strings.HasPrefix(a.cfg.Server, "https://") {
		args = append(args, "--ca", a.caPath()) // the CA the agent pinned when it joined
	} else if grant.TLS {
		ca := filepath.Join(a.cfg.DataDir, "efs", "ca.pem")
		if err := os.WriteFile(ca, []byte(grant.CA), 0o644); err != nil {
			return err
		}
		args = append(args, "--ca", ca)
	}
	logPath := mp + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BERTH_MOUNT_TOKEN="+grant.Token, fsproto.ReadyEnv+"=3")
	cmd.ExtraFiles = []*os.File{wr}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return fmt.Errorf("start the mount: %v", err)
	}
	wr.Close()
	type word struct {
		ok  bool
		why string
	}
	ready := make(chan word, 1)
	go func() {
		ok, why := fsproto.ReadReady(rd)
		ready <- word{ok, why}
	}()
	select {
	case w := <-ready:
		if !w.ok {
			cmd.Wait()
			if w.why != "" {
				return errors.New(w.why)
			}
			return errors.New(lastLine(logPath))
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return errors.New("mount timed out")
	}
	go cmd.Wait() // reap it when it ends (at unmount); it outlives a restart of this agent
	return nil
}

// lastLine is the mount process's last log line: why it failed.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "mount failed"
	}
	defer f.Close()
	last := "mount failed"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = strings.TrimPrefix(l, "berth: ")
		}
	}
	return last
}

// unmountEFS unmounts the task's EFS and FSx volumes (idempotent); the mount
// processes exit when their mounts go.
func (r *runner) unmountEFS() {
	for _, v := range r.def.Volumes {
		if v.EfsVolumeConfiguration == nil && v.FsxWindowsFileServerVolumeConfiguration == nil {
			continue
		}
		mp := r.a.efsPath(r.id, spec.Val(v.Name))
		if !isMountpoint(mp) {
			continue
		}
		if err := unix.Unmount(mp, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(mp, unix.MNT_DETACH)
			}
			if err != nil {
				r.a.log.Warn("unmount EFS volume", "task", r.arn, "volume", spec.Val(v.Name), "err", err)
			}
		}
	}
}

// unmountStaleEFS unmounts EFS mounts of tasks this agent no longer runs
// (stopped while the agent was away).
func (a *Agent) unmountStaleEFS(live map[string]bool) {
	tasks, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "efs"))
	for _, t := range tasks {
		if !t.IsDir() || live[t.Name()] {
			continue
		}
		vols, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "efs", t.Name()))
		for _, v := range vols {
			mp := filepath.Join(a.cfg.DataDir, "efs", t.Name(), v.Name())
			if v.IsDir() && isMountpoint(mp) {
				a.log.Info("unmounting an EFS volume no task uses", "path", mp)
				if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
					a.log.Warn("unmount stale EFS volume", "path", mp, "err", err)
				}
			}
		}
		if !hasMounts(filepath.Join(a.cfg.DataDir, "efs", t.Name())) {
			os.RemoveAll(filepath.Join(a.cfg.DataDir, "efs", t.Name()))
		}
	}
}

func hasMounts(dir string) bool {
	vols, _ := os.ReadDir(dir)
	for _, v := range vols {
		if v.IsDir() && isMountpoint(filepath.Join(dir, v.Name())) {
			return true
		}
	}
	return false
}
