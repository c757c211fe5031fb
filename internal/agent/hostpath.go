package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/spec"
)

// Host paths. Without --allow-host-path a task may bind any host path, as
// on ECS. With it, a path must lie under an allowed directory, and the
// check must hold against a task that can write there: a symlink planted
// in an allowed directory (x/esc -> /) must not lead out of it, neither
// when the path is checked nor between the check and the bind. So the
// agent walks the path below the allowed directory one component at a
// time with openat(O_NOFOLLOW), creating what is missing with mkdirat,
// and binds the directory it holds open (by its /proc/self/fd link, which
// names that very directory) onto a place of its own under its data dir;
// Docker binds that place into the containers. No path a task can change
// is resolved again after the check.

func (a *Agent) hostPathDir(taskID, volume string) string {
	return filepath.Join(a.cfg.DataDir, "hostpaths", taskID, volume)
}

// hostPathSource makes a task's host path exist and returns what Docker
// should bind for it.
func (r *runner) hostPathSource(volume, p string) (string, error) {
	if len(r.a.cfg.AllowedHostPaths) == 0 {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", volumeError("create host path %s of volume '%s': %v", p, volume, err)
		}
		return p, nil
	}
	root, rel, ok := r.a.allowedRoot(p)
	if !ok {
		return "", volumeError("host path %s of volume '%s' is not allowed on this instance", p, volume)
	}
	fd, err := openBeneath(root, rel)
	if err != nil {
		return "", volumeError("host path %s of volume '%s': %v", p, volume, err)
	}
	defer unix.Close(fd)
	mp := r.a.hostPathDir(r.id, volume)
	if err := os.MkdirAll(mp, 0o700); err != nil {
		return "", volumeError("host path %s of volume '%s': %v", p, volume, err)
	}
	unmountAll(mp) // a bind left by an earlier try of this task
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), mp, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return "", volumeError("bind host path %s of volume '%s': %v", p, volume, err)
	}
	return mp, nil
}

// allowedRoot finds the allowed directory p lies under (as given by the
// operator, or as its symlinks resolve) and p's path below it.
func (a *Agent) allowedRoot(p string) (root, rel string, ok bool) {
	p = filepath.Clean(p)
	for _, given := range a.cfg.AllowedHostPaths {
		forms := []string{filepath.Clean(given)}
		if resolved, err := filepath.EvalSymlinks(given); err == nil && resolved != forms[0] {
			forms = append(forms, resolved)
		}
		for _, r := range forms {
			if p == r {
				return r, "", true
			}
			if rest, found := strings.CutPrefix(p, strings.TrimSuffix(r, "/")+"/"); found {
				return r, rest, true
			}
		}
	}
	return "", "", false
}

// openBeneath opens the directory rel below root, creating missing
// directories, and refuses to follow a symlink anywhere below root. rel
// is clean and relative, so it holds no "..".
func openBeneath(root, rel string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", root, err)
	}
	if rel == "" {
		return fd, nil
	}
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." || name == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("invalid path component %q", name)
		}
		if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return -1, fmt.Errorf("create %s: %w", name, err)
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("%s is a symlink or not a directory: refused", name)
		} else if err != nil {
			return -1, fmt.Errorf("open %s: %w", name, err)
		}
		fd = next
	}
	return fd, nil
}

// unmountAll removes every mount stacked on mp; it is not an error for
// there to be none.
func unmountAll(mp string) {
	for i := 0; i < 16 && unix.Unmount(mp, unix.MNT_DETACH) == nil; i++ {
	}
}

// unbindHostPaths releases the task's host path binds (idempotent).
func (r *runner) unbindHostPaths() {
	if len(r.a.cfg.AllowedHostPaths) == 0 {
		return
	}
	dir := filepath.Join(r.a.cfg.DataDir, "hostpaths", r.id)
	for _, v := range r.def.Volumes {
		if v.Host != nil && spec.Val(v.Host.SourcePath) != "" {
			unmountAll(filepath.Join(dir, spec.Val(v.Name)))
		}
	}
	removeEmptyDirs(dir) // never RemoveAll: a bind that failed to go would take the host's files along
}

// unbindStaleHostPaths releases the binds of tasks this agent no longer
// runs (stopped while it was away).
func (a *Agent) unbindStaleHostPaths(live map[string]bool) {
	base := filepath.Join(a.cfg.DataDir, "hostpaths")
	tasks, _ := os.ReadDir(base)
	for _, t := range tasks {
		if !t.IsDir() || live[t.Name()] {
			continue
		}
		vols, _ := os.ReadDir(filepath.Join(base, t.Name()))
		for _, v := range vols {
			unmountAll(filepath.Join(base, t.Name(), v.Name()))
		}
		removeEmptyDirs(filepath.Join(base, t.Name()))
	}
}

// removeEmptyDirs removes dir and its subdirectories if they hold nothing
// else; it never removes a file or descends into a mount.
func removeEmptyDirs(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}
