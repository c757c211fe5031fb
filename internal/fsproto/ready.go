package fsproto

import (
	"io"
	"strings"
)

// A mount started by another process (berth fs mount --detach, or an
// agent's EFS mount) says on the file descriptor named by
// $BERTH_MOUNT_READY_FD whether it mounted: "ok", or "err " and why.

// ReadyEnv names the environment variable of that descriptor.
const ReadyEnv = "BERTH_MOUNT_READY_FD"

// WriteReady tells the starter the mount is up (err nil) or why not.
func WriteReady(w io.Writer, err error) {
	if err == nil {
		io.WriteString(w, "ok\n")
		return
	}
	io.WriteString(w, "err "+strings.ReplaceAll(err.Error(), "\n", " ")+"\n")
}

// ReadReady reads the mount's word: whether it mounted and, if not and it
// said, why. A mount that exits without a word did not mount.
func ReadReady(r io.Reader) (ok bool, why string) {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	msg := strings.TrimSpace(string(b))
	if strings.HasPrefix(msg, "ok") {
		return true, ""
	}
	why, _ = strings.CutPrefix(msg, "err ")
	return false, why
}
