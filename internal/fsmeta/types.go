// Package fsmeta is the shared file system's metadata engine on etcd:
// inodes, directory entries, per-block slice lists, xattrs, sessions,
// locks and orphans, under the keys state/keys.go spells (fsm/ID/…). Every
// operation that must be atomic is one etcd transaction guarded on the
// revisions it read; one that would exceed etcd's limits is refused, never
// split. Mounts reach it only through the server's HTTP API, in the
// protocol of package fsproto; file data lives in a fschunk.Store.
//
// Files by concern: engine.go (the Engine, Do and the op dispatch, reads
// and transactions), dir.go and rename.go (the namespace), attr.go
// (attributes, xattrs, usage), data.go (block lists and commits),
// chunkid.go (issued chunk ids), locks.go (sessions, locks, holds),
// access.go (restricted sessions: identity, root and confinement),
// maintain.go (file system records, orphans, compaction, chunk
// collection, fsck), events.go (changes for mounts).
package fsmeta

import (
	"fmt"
	"syscall"

	"github.com/berth-project/berth/internal/fsproto"
)

// FileSystem is a stored file system, with the settings the EFS API
// shows (they change nothing in how Berth stores data).
type FileSystem struct {
	ID              string  `json:"id"`
	Name            string  `json:"name"`
	CreationToken   string  `json:"creationToken,omitempty"`
	CreatedAt       int64   `json:"createdAt"` // unix ns
	Tags            []Tag   `json:"tags,omitempty"`
	PerformanceMode string  `json:"performanceMode,omitempty"`
	ThroughputMode  string  `json:"throughputMode,omitempty"`
	Provisioned     float64 `json:"provisionedThroughputInMibps,omitempty"`
	Encrypted       bool    `json:"encrypted,omitempty"`
	KmsKeyID        string  `json:"kmsKeyId,omitempty"`
	Zone            string  `json:"availabilityZoneName,omitempty"` // One Zone file systems
	Backup          bool    `json:"backup,omitempty"`
	Policy          string  `json:"policy,omitempty"`
	// FSx marks the file system backing the FSx for Windows File Server
	// file system of the same id (package fsx): the EFS API does not show
	// it, and it is deleted through FSx.
	FSx bool `json:"fsx,omitempty"`
}

// Tag is a resource tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Times is a directory's entry-change times, kept apart from its inode so
// that creating files in one directory from many clients does not contend
// on the directory's inode.
type Times struct {
	Mtime int64  `json:"mt"`
	Ctime int64  `json:"c"`
	By    string `json:"by,omitempty"`
}

// Dentry is a directory entry.
type Dentry struct {
	Ino  uint64 `json:"i"`
	Mode uint32 `json:"m"` // type bits only
	By   string `json:"by,omitempty"`
}

// Blocks is the stored value of one block key.
type Blocks struct {
	Slices []fsproto.Slice `json:"s"`
	By     string          `json:"by,omitempty"`
}

// Session is a mount's session: its locks and holds live on its lease.
// A restricted session (a task's mount through an access point, or under
// a file system policy) carries what it may do, decided when it opened.
type Session struct {
	ID      string `json:"id"`
	Host    string `json:"host"`
	Mount   string `json:"mount"`
	Lease   int64  `json:"lease"`
	Started int64  `json:"started"`
	Zone    string `json:"zone,omitempty"`
	Task    string `json:"task,omitempty"`
	// AccessPoint's identity replaces the caller's in every operation.
	AccessPoint string   `json:"accessPoint,omitempty"`
	Uid         *uint32  `json:"uid,omitempty"`
	Gid         *uint32  `json:"gid,omitempty"`
	Gids        []uint32 `json:"gids,omitempty"`
	// Root is the directory the client sees as its root (an access point's
	// or a rootDirectory); 0 is the file system's root.
	Root       uint64 `json:"root,omitempty"`
	ReadOnly   bool   `json:"readOnly,omitempty"`
	RootSquash bool   `json:"rootSquash,omitempty"` // uid 0 acts as 65534 (no ClientRootAccess)
}

// Orphan marks an inode whose last link is gone.
type Orphan struct {
	Since int64 `json:"since"` // unix ns
}

// Error is an errno with context, returned by the engine.
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Msg, e.Errno) }

func errno(e syscall.Errno, format string, a ...any) error {
	return &Error{Errno: e, Msg: fmt.Sprintf(format, a...)}
}
