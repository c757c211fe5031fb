// Package fsproto is the shared file system's mount protocol: the
// operations a mount (package fsmount) sends to a server and what comes
// back, as JSON over HTTP (POST /berth/v1/fs/op). It imports nothing of
// the server's, so a mount links no etcd code; package fsmeta carries the
// operations out.
package fsproto

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"syscall"
	"time"
)

// BlockSize is the logical block: a file's data is addressed as blocks of
// this size, each a list of slices.
const BlockSize = 4 << 20

// RootIno is the root directory's inode number (FUSE's root node id).
const RootIno = 1

// MaxName is the longest file name, in bytes.
const MaxName = 255

// MaxXattrSize bounds one xattr value (Linux's XATTR_SIZE_MAX) and all of
// an inode's xattrs together.
const MaxXattrSize = 64 << 10

// Attr is an inode. Mode carries the file type bits (S_IFMT).
type Attr struct {
	Ino    uint64            `json:"ino,omitempty"`
	Mode   uint32            `json:"m"`
	Uid    uint32            `json:"u"`
	Gid    uint32            `json:"g"`
	Nlink  uint32            `json:"n"`
	Size   uint64            `json:"s,omitempty"`
	Atime  int64             `json:"a"`
	Mtime  int64             `json:"mt"`
	Ctime  int64             `json:"c"`
	Rdev   uint32            `json:"r,omitempty"`
	Parent uint64            `json:"p,omitempty"` // directories: the parent directory
	Target string            `json:"l,omitempty"` // symlinks
	Xattr  map[string][]byte `json:"x,omitempty"` // stored; never sent to clients
	// Xattrs tells a client that the inode has extended attributes; it
	// reads them with getxattr, which checks read permission.
	Xattrs bool   `json:"xs,omitempty"`
	By     string `json:"by,omitempty"` // session that last wrote it (for invalidation)
	// Rev is the etcd mod revision of the inode: it changes with every
	// change to the file, so a client keeps its page cache only while Rev
	// is unchanged.
	Rev int64 `json:"rev,omitempty"`
}

// IsDir reports whether the inode is a directory.
func (a *Attr) IsDir() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// IsReg reports whether the inode is a regular file.
func (a *Attr) IsReg() bool { return a.Mode&syscall.S_IFMT == syscall.S_IFREG }

// Slice is part of a block's data: Len bytes at Off within the block, read
// from chunk ID at ChunkOff. Later slices in a block's list win.
type Slice struct {
	Off      uint32 `json:"o"`
	Len      uint32 `json:"n"`
	ID       string `json:"id"`
	ChunkOff uint32 `json:"co,omitempty"`
}

// Coverage is a set of byte ranges of one block, kept as sorted, disjoint
// intervals: the ranges that later slices already cover, when a block's
// slices are walked from the newest back.
type Coverage struct{ iv [][2]uint32 }

// Covers reports whether [lo, hi) is covered entirely.
func (c *Coverage) Covers(lo, hi uint32) bool {
	for _, v := range c.iv {
		if v[0] <= lo && hi <= v[1] {
			return true
		}
	}
	return false
}

// Add adds [lo, hi), merging it with the ranges it overlaps or touches.
func (c *Coverage) Add(lo, hi uint32) {
	if lo >= hi {
		return
	}
	var out [][2]uint32
	i := 0
	for ; i < len(c.iv) && c.iv[i][1] < lo; i++ {
		out = append(out, c.iv[i])
	}
	for ; i < len(c.iv) && c.iv[i][0] <= hi; i++ {
		lo, hi = min(lo, c.iv[i][0]), max(hi, c.iv[i][1])
	}
	out = append(out, [2]uint32{lo, hi})
	c.iv = append(out, c.iv[i:]...)
}

// Visible returns a block's slices without those that later slices hide
// entirely (later slices win), in their order.
func Visible(ss []Slice) []Slice {
	var c Coverage
	keep := make([]bool, len(ss))
	hidden := 0
	for i := len(ss) - 1; i >= 0; i-- {
		lo, hi := ss[i].Off, ss[i].Off+ss[i].Len
		if keep[i] = !c.Covers(lo, hi); !keep[i] {
			hidden++
		}
		c.Add(lo, hi)
	}
	if hidden == 0 {
		return ss
	}
	out := make([]Slice, 0, len(ss)-hidden)
	for i, s := range ss {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out
}

// BlockSlice is a slice and the block it belongs to, as a write commits it.
type BlockSlice struct {
	Blk uint32 `json:"b"`
	Slice
}

// Lock kinds and types (types as in fcntl: F_RDLCK, F_WRLCK, F_UNLCK).
const (
	LockPosix = 0
	LockFlock = 1
	LockRead  = syscall.F_RDLCK
	LockWrite = syscall.F_WRLCK
	Unlock    = syscall.F_UNLCK
)

// Lock is one held lock: a byte range [Start, End] (End inclusive; flock
// locks cover the whole file) of one owner in one session.
type Lock struct {
	Kind  int    `json:"k"`
	Owner uint64 `json:"o"`
	Type  int    `json:"t"`
	Start uint64 `json:"s"`
	End   uint64 `json:"e"`
	Pid   uint32 `json:"p,omitempty"`
}

// Dirent is one directory entry in a listing.
type Dirent struct {
	Name string `json:"n"`
	Ino  uint64 `json:"i"`
	Mode uint32 `json:"m"`
}

// SetAttr valid bits (as FUSE's FATTR_*).
const (
	SetMode     = 1 << 0
	SetUid      = 1 << 1
	SetGid      = 1 << 2
	SetSize     = 1 << 3
	SetAtime    = 1 << 4
	SetMtime    = 1 << 5
	SetAtimeNow = 1 << 7
	SetMtimeNow = 1 << 8
	SetCtime    = 1 << 10
)

// Rename flags (as renameat2).
const (
	RenameNoReplace = 1 << 0
	RenameExchange  = 1 << 1
)

// Op names an operation.
type Op string

// The operations. A session op needs no session of its own; every other
// op of a mount names the session it opened.
const (
	OpLookup      Op = "lookup"
	OpGetattr     Op = "getattr"
	OpOpen        Op = "open" // getattr, at open(2): the close-to-open check
	OpSetattr     Op = "setattr"
	OpMknod       Op = "mknod" // files, directories, symlinks, devices
	OpTmpfile     Op = "tmpfile"
	OpLink        Op = "link"
	OpUnlink      Op = "unlink"
	OpRmdir       Op = "rmdir"
	OpRename      Op = "rename"
	OpReaddir     Op = "readdir"
	OpReadBlocks  Op = "readblocks"
	OpCommit      Op = "commit" // a write's slices, and the size
	OpGetxattr    Op = "getxattr"
	OpListxattr   Op = "listxattr"
	OpSetxattr    Op = "setxattr"
	OpRemovexattr Op = "removexattr"
	OpStatfs      Op = "statfs"
	OpHold        Op = "hold"   // an open file stays readable after its last unlink
	OpUnhold      Op = "unhold" // the hold's release
	OpGetlk       Op = "getlk"
	OpSetlk       Op = "setlk"
	// OpChunkURLs asks, on a blob store mounts reach themselves, for
	// Limit (at most MaxChunkURLs) new chunk ids, each with a URL to put a
	// chunk of exactly Size bytes to. Elsewhere it fails with ENOTSUP.
	OpChunkURLs Op = "chunkurls"

	OpSessionOpen      Op = "session.open"
	OpSessionKeepAlive Op = "session.keepalive"
	OpSessionClose     Op = "session.close"
)

// Ops are all the operations.
var Ops = []Op{OpLookup, OpGetattr, OpOpen, OpSetattr, OpMknod, OpTmpfile, OpLink, OpUnlink, OpRmdir, OpRename,
	OpReaddir, OpReadBlocks, OpCommit, OpGetxattr, OpListxattr, OpSetxattr, OpRemovexattr, OpStatfs, OpHold, OpUnhold,
	OpGetlk, OpSetlk, OpChunkURLs, OpSessionOpen, OpSessionKeepAlive, OpSessionClose}

// Known reports whether op is one of Ops.
func (op Op) Known() bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// IsSession reports whether op opens, renews or closes a session.
func (op Op) IsSession() bool {
	return op == OpSessionOpen || op == OpSessionKeepAlive || op == OpSessionClose
}

// Mutates reports whether op changes the file system (a read-only
// session may not send it).
func (op Op) Mutates() bool {
	switch op {
	case OpSetattr, OpMknod, OpTmpfile, OpLink, OpUnlink, OpRmdir, OpRename, OpCommit, OpSetxattr, OpRemovexattr, OpChunkURLs:
		return true
	}
	return false
}

// Request is one metadata operation from a mount. Which fields matter
// depends on Op.
type Request struct {
	Op        Op           `json:"op"`
	FS        string       `json:"fs"`
	Session   string       `json:"sess,omitempty"`
	Uid       uint32       `json:"uid"`
	Gid       uint32       `json:"gid"`
	Ino       uint64       `json:"ino,omitempty"`
	Parent    uint64       `json:"parent,omitempty"`
	NewParent uint64       `json:"newParent,omitempty"`
	Name      string       `json:"name,omitempty"`
	NewName   string       `json:"newName,omitempty"`
	Mode      uint32       `json:"mode,omitempty"`
	Rdev      uint32       `json:"rdev,omitempty"`
	Flags     uint32       `json:"flags,omitempty"`
	Excl      bool         `json:"excl,omitempty"`
	Held      bool         `json:"held,omitempty"` // unlink/rename: the caller has the victim open
	Target    string       `json:"target,omitempty"`
	Valid     uint32       `json:"valid,omitempty"`
	Size      uint64       `json:"size,omitempty"`
	Atime     int64        `json:"atime,omitempty"`
	Mtime     int64        `json:"mtime,omitempty"`
	Slices    []BlockSlice `json:"slices,omitempty"`
	Blk       uint32       `json:"blk,omitempty"`
	BlkEnd    uint32       `json:"blkEnd,omitempty"`
	Key       string       `json:"key,omitempty"`
	Value     []byte       `json:"value,omitempty"`
	Lock      *Lock        `json:"lock,omitempty"`
	After     string       `json:"after,omitempty"`
	Plus      bool         `json:"plus,omitempty"` // readdir: with each entry's attributes (Response.Attrs)
	Limit     int          `json:"limit,omitempty"`
	Host      string       `json:"host,omitempty"`
	// session.open: the access point to mount through (admin mounts; a
	// task's mount names it in its mount token) and the mount's zone.
	AccessPoint string `json:"accessPoint,omitempty"`
	Zone        string `json:"zone,omitempty"`
}

// Response is an operation's result. Errno is 0 on success.
type Response struct {
	Errno    syscall.Errno      `json:"errno,omitempty"`
	Message  string             `json:"message,omitempty"` // why, when a mount is refused
	Attr     *Attr              `json:"attr,omitempty"`
	Dir      *Attr              `json:"dir,omitempty"` // the parent directory after a create or an unlink
	Ino      uint64             `json:"ino,omitempty"`
	Rev      int64              `json:"rev,omitempty"`
	Entries  []Dirent           `json:"entries,omitempty"`
	Attrs    []*Attr            `json:"attrs,omitempty"` // readdir with Plus: Entries' attributes (nil: gone)
	More     bool               `json:"more,omitempty"`
	Blocks   map[uint32][]Slice `json:"blocks,omitempty"`
	Value    []byte             `json:"value,omitempty"`
	Names    []string           `json:"names,omitempty"`
	Lock     *Lock              `json:"lock,omitempty"`
	Session  string             `json:"session,omitempty"`
	LeaseTTL int64              `json:"leaseTtl,omitempty"`
	Statfs   *Statfs            `json:"statfs,omitempty"`
	// Chunks are new chunk ids and the URLs to put them to (chunkurls),
	// to be used within ChunksFor milliseconds: an issued id ages from its
	// issue, and a commit takes only young ones.
	Chunks    []ChunkURL `json:"chunks,omitempty"`
	ChunksFor int64      `json:"chunksFor,omitempty"`
	// URLs, on a store mounts reach themselves, map each chunk a
	// readblocks reply names to a URL to get it from, good for
	// URLTTL.
	URLs map[string]string `json:"urls,omitempty"`
}

// ChunkURL is a new chunk's id and the URL to put it to.
type ChunkURL struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// MaxChunkURLs bounds one chunkurls request.
const MaxChunkURLs = 64

// MaxReadBlocks bounds the blocks one readblocks request names.
const MaxReadBlocks = 256

// URLTTL is how long a client may use a chunk URL from the server; the
// URLs themselves last longer, so one in hand does not expire in flight.
const URLTTL = 10 * time.Minute

// Statfs is a file system's usage.
type Statfs struct {
	Bytes uint64 `json:"bytes"`
	Files uint64 `json:"files"`
}

// ErrChunkExpired refuses a commit naming a chunk that is missing or was
// uploaded too long ago to be safe from collection: the client uploads the
// data again under a new chunk id and retries.
const ErrChunkExpired = syscall.EKEYEXPIRED

// ValidFSID reports whether id is a file system id: fs- and 8 to 40
// lower-case hex digits.
func ValidFSID(id string) bool {
	hex, ok := strings.CutPrefix(id, "fs-")
	return ok && len(hex) >= 8 && len(hex) <= 40 && lowerHex(hex)
}

// ValidChunkID reports whether id is a chunk id: 32 lower-case hex digits.
func ValidChunkID(id string) bool { return len(id) == 32 && lowerHex(id) }

// lowerHex reports whether s is all lower-case hex digits (these checks
// run on every slice of every commit, so not with a regexp).
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewChunkID returns a fresh random chunk id.
func NewChunkID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Event tells mounts that something changed, so they drop cached entries,
// attributes or pages. By is the session that made the change (empty for
// deletions), so a mount can skip its own.
type Event struct {
	Ino    uint64 `json:"i,omitempty"`
	Parent uint64 `json:"p,omitempty"`
	Name   string `json:"n,omitempty"`
	Data   bool   `json:"d,omitempty"`
	By     string `json:"by,omitempty"`
	// Rev is the etcd revision of the change: a mount that reconnects (to
	// any server) asks for the events after the last revision it saw
	// whole. A stream's first line is an event with only Rev: the
	// revision it starts after. Reset says that revision is gone
	// (compacted): the mount must assume it missed changes.
	Rev   int64 `json:"r,omitempty"`
	Reset bool  `json:"reset,omitempty"`
}
