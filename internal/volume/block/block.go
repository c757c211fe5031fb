// Package block manages block volumes on one machine: a sparse image file
// attached as a loop device with direct I/O, formatted once, mounted where
// the agent binds it into containers. It shells out to util-linux and the
// file systems' own tools (losetup, mkfs.*, mount, fsfreeze), as an
// operator would.
package block

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Volume is one volume's files on this machine.
type Volume struct {
	Image      string // sparse image file
	MountPoint string // mount point
}

// Paths returns where a volume lives under dir.
func Paths(dir, id string) Volume {
	return Volume{Image: filepath.Join(dir, "volumes", id+".img"), MountPoint: filepath.Join(dir, "mounts", id)}
}

func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Create makes a sparse image of size bytes; it fails if one exists.
func (v Volume) Create(size int64) error {
	if err := os.MkdirAll(filepath.Dir(v.Image), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(v.Image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		os.Remove(v.Image)
		return err
	}
	return f.Sync()
}

// Provision makes the volume's image whole or not at all: fill (which
// creates, formats or restores an image at the path it is given) works on
// a partial file beside the image, which is synced and renamed into place
// only when fill succeeds. An image that exists is therefore complete; a
// partial file left by a crash is discarded and fill runs again.
func (v Volume) Provision(fill func(image string) error) error {
	partial := partialPath(v.Image)
	if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := fill(partial); err != nil {
		os.Remove(partial)
		return err
	}
	f, err := os.Open(partial)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(partial, v.Image)
	}
	if err != nil {
		os.Remove(partial)
		return err
	}
	return syncDir(filepath.Dir(v.Image))
}

func partialPath(image string) string { return image + ".partial" }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Exists reports whether the image file exists.
func (v Volume) Exists() bool {
	_, err := os.Stat(v.Image)
	return err == nil
}

// Format makes a file system on the image (xfs, ext4 or ext3).
func (v Volume) Format(fs string) error {
	var err error
	switch fs {
	case "xfs":
		_, err = run("mkfs.xfs", "-q", v.Image)
	case "ext4", "ext3":
		_, err = run("mkfs."+fs, "-q", "-F", v.Image)
	default:
		return fmt.Errorf("unsupported file system %q", fs)
	}
	if err != nil {
		return err
	}
	return dropCache(v.Image)
}

// dropCache writes the image's cached pages and drops them. The loop
// device reads and writes the image with direct I/O: cached copies would
// only cost memory, and while any are cached every direct write has to
// look for them.
func dropCache(image string) error {
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// Loop returns the loop device the image is attached to, or "".
func (v Volume) Loop() (string, error) {
	out, err := run("losetup", "-j", v.Image, "-O", "NAME", "-n")
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", nil
	}
	return strings.Fields(out)[0], nil
}

// Attach attaches the image to a loop device with direct I/O (idempotent).
func (v Volume) Attach() (string, error) {
	if dev, err := v.Loop(); err != nil || dev != "" {
		return dev, err
	}
	return run("losetup", "--find", "--show", "--direct-io=on", v.Image)
}

// Mounted reports whether the mount point is mounted.
func (v Volume) Mounted() bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == v.MountPoint {
			return true
		}
	}
	return false
}

// Mount attaches and mounts the volume (idempotent) and returns the device.
func (v Volume) Mount(fs string) (string, error) {
	dev, err := v.Attach()
	if err != nil {
		return "", err
	}
	if v.Mounted() {
		return dev, nil
	}
	if err := os.MkdirAll(v.MountPoint, 0o755); err != nil {
		return "", err
	}
	args := []string{"-t", fs}
	if fs == "xfs" {
		// A restored copy shares its origin's UUID; xfs refuses that without nouuid.
		args = append(args, "-o", "nouuid")
	}
	if _, err := run("mount", append(args, dev, v.MountPoint)...); err != nil {
		return "", err
	}
	return dev, nil
}

// Unmount unmounts and detaches the loop device (idempotent).
func (v Volume) Unmount() error {
	if v.Mounted() {
		if _, err := run("umount", v.MountPoint); err != nil {
			return err
		}
	}
	dev, err := v.Loop()
	if err != nil {
		return err
	}
	if dev != "" {
		if _, err := run("losetup", "-d", dev); err != nil {
			return err
		}
	}
	return nil
}

// Remove unmounts and deletes the volume's files.
func (v Volume) Remove() error {
	if err := v.Unmount(); err != nil {
		return err
	}
	os.Remove(v.MountPoint)
	os.Remove(stagingPath(v.Image))
	os.Remove(partialPath(v.Image))
	if err := os.Remove(v.Image); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Freeze suspends writes to the mounted file system so its image can be
// read consistently; Thaw resumes them.
func (v Volume) Freeze() error {
	if !v.Mounted() {
		return nil
	}
	_, err := run("fsfreeze", "--freeze", v.MountPoint)
	return err
}

// ThawIfFrozen resumes writes if the file system is frozen, as it stays
// when whoever froze it dies before thawing it; it reports whether it was.
func (v Volume) ThawIfFrozen() (bool, error) {
	if !v.Mounted() {
		return false, nil
	}
	out, err := run("fsfreeze", "--unfreeze", v.MountPoint)
	if err != nil && strings.Contains(out, "Invalid argument") {
		return false, nil // not frozen
	}
	return err == nil, err
}

// Thaw resumes writes after Freeze.
func (v Volume) Thaw() error {
	if !v.Mounted() {
		return nil
	}
	_, err := run("fsfreeze", "--unfreeze", v.MountPoint)
	return err
}
