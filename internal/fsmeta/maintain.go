package fsmeta

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// CreateFS creates a file system with an empty root directory owned by
// root, mode 0755. A creation token names it once: a second create with the
// same token returns the first file system and ErrTokenUsed.
func (e *Engine) CreateFS(ctx context.Context, token string, f *FileSystem) (*FileSystem, error) {
	if f.ID == "" {
		f.ID = "fs-" + newID(9)[:17]
	}
	f.CreatedAt = now()
	t := now()
	root := &fsproto.Attr{Ino: fsproto.RootIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Parent: fsproto.RootIno, Atime: t, Mtime: t, Ctime: t}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(state.FSKey(f.ID)), "=", 0)}
	ops := []clientv3.Op{clientv3.OpPut(state.FSKey(f.ID), marshal(f)), clientv3.OpPut(state.InodeKey(f.ID, fsproto.RootIno), storeAttr(root))}
	if token != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(state.FSTokenKey(token)), "=", 0))
		ops = append(ops, clientv3.OpPut(state.FSTokenKey(token), f.ID))
	}
	resp, err := e.Client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(state.FSTokenKey(token))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; token != "" && len(kvs) > 0 {
			old, err := e.GetFS(ctx, string(kvs[0].Value))
			if err != nil {
				return nil, err
			}
			return old, ErrTokenUsed
		}
		return nil, fmt.Errorf("file system id %s collided; retry", f.ID)
	}
	return f, nil
}

// ErrTokenUsed means a file system with that creation token exists.
var ErrTokenUsed = fmt.Errorf("creation token already used")

// ErrNoFS means there is no such file system.
var ErrNoFS = fmt.Errorf("no such file system")

// ErrFSInUse means a file system still has mounts.
var ErrFSInUse = fmt.Errorf("file system is mounted")

// UpdateFS changes a file system's record with fn, guarded on its revision.
func (e *Engine) UpdateFS(ctx context.Context, id string, fn func(*FileSystem) error) (*FileSystem, error) {
	for i := 0; i < attempts; i++ {
		resp, err := e.Client.Get(ctx, state.FSKey(id))
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, ErrNoFS
		}
		f := &FileSystem{}
		if err := json.Unmarshal(resp.Kvs[0].Value, f); err != nil {
			return nil, err
		}
		if err := fn(f); err != nil {
			return nil, err
		}
		txn, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(state.FSKey(id)), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(state.FSKey(id), marshal(f))).Commit()
		if err != nil {
			return nil, err
		}
		if txn.Succeeded {
			return f, nil
		}
	}
	return nil, errContention
}

// GetFS reads one file system.
func (e *Engine) GetFS(ctx context.Context, id string) (*FileSystem, error) {
	resp, err := e.Client.Get(ctx, state.FSKey(id))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNoFS
	}
	f := &FileSystem{}
	return f, json.Unmarshal(resp.Kvs[0].Value, f)
}

// ListFS lists file systems in id order.
func (e *Engine) ListFS(ctx context.Context) ([]*FileSystem, error) {
	var out []*FileSystem
	err := e.scan(ctx, state.FSKey(""), 0, func(_ string, v []byte, _, _ int64) error {
		f := &FileSystem{}
		if json.Unmarshal(v, f) == nil {
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// Sessions counts a file system's live mount sessions.
func (e *Engine) Sessions(ctx context.Context, fs string) (int64, error) {
	resp, err := e.Client.Get(ctx, state.FSMetaPrefix(fs)+"s/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// DeleteFS deletes a file system and all its data. It refuses while the
// file system has mount targets or mounts. guards and ops are the owner's
// writes of records that hang off the file system (its EFS access points,
// efs.AccessPointDeletes), made in the same transaction.
func (e *Engine) DeleteFS(ctx context.Context, id, token string, guards []clientv3.Cmp, ops []clientv3.Op) error {
	ops = append(ops, clientv3.OpDelete(state.FSKey(id)), clientv3.OpDelete(state.FSMetaPrefix(id), clientv3.WithPrefix()))
	if token != "" {
		ops = append(ops, clientv3.OpDelete(state.FSTokenKey(token)))
	}
	resp, err := e.txn(ctx, append([]clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(state.FSKey(id)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(state.FSMetaPrefix(id)+"s/"), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(state.EFSMountTargetPrefix(id)), "=", 0).WithPrefix(),
	}, guards...), ops)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		if _, err := e.GetFS(ctx, id); err != nil {
			return err
		}
		return ErrFSInUse
	}
	return e.Chunks.RemoveAll(ctx, id)
}

// Maintain runs the background work of every file system: freeing
// orphans, compacting blocks and collecting unreferenced chunks. Several
// servers may run it at once; every change it makes is guarded.
//
// Orphans are freed every pass; chunks are collected every quarter of
// ChunkGrace (no chunk is collectable sooner), since a collection lists
// every chunk of the file system in its store.
func (e *Engine) Maintain(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	collected := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-e.compact:
			if err := e.Compact(ctx, j.fs, j.ino, j.blk); err != nil && ctx.Err() == nil {
				e.Log.Warn("compaction failed", "fs", j.fs, "ino", j.ino, "blk", j.blk, "err", err)
			}
		case <-tick.C:
			fss, err := e.ListFS(ctx)
			if err != nil {
				continue
			}
			live := map[string]bool{}
			for _, f := range fss {
				live[f.ID] = true
			}
			for id := range collected {
				if !live[id] {
					delete(collected, id)
				}
			}
			for _, f := range fss {
				if _, err := e.FreeOrphans(ctx, f.ID); err != nil && ctx.Err() == nil {
					e.Log.Warn("freeing orphans failed", "fs", f.ID, "err", err)
				}
				if time.Since(collected[f.ID]) < e.ChunkGrace/4 {
					continue
				}
				collected[f.ID] = time.Now()
				if _, err := e.CollectChunks(ctx, f.ID); err != nil && ctx.Err() == nil {
					e.Log.Warn("chunk collection failed", "fs", f.ID, "err", err)
				}
			}
		}
	}
}

// FreeOrphans deletes unlinked inodes older than OrphanGrace that no
// session holds open, with their data. It returns how many it freed.
func (e *Engine) FreeOrphans(ctx context.Context, fs string) (int, error) {
	freed := 0
	pfx := state.FSMetaPrefix(fs) + "o/"
	var inos []uint64
	err := e.scan(ctx, pfx, 0, func(k string, v []byte, _, _ int64) error {
		o := Orphan{}
		if err := decode(k, v, &o); err != nil {
			return err // an orphan record that cannot be read frees nothing
		}
		if time.Since(time.Unix(0, o.Since)) < e.OrphanGrace {
			return nil
		}
		ino, err := strconv.ParseUint(strings.TrimPrefix(k, pfx), 16, 64)
		if err == nil {
			inos = append(inos, ino)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, ino := range inos {
		ok, err := e.freeInode(ctx, fs, ino)
		if err != nil {
			return freed, err
		}
		if ok {
			freed++
		}
	}
	return freed, nil
}

func (e *Engine) freeInode(ctx context.Context, fs string, ino uint64) (bool, error) {
	n, err := e.load(ctx, fs, ino)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(state.HoldPrefix(fs, ino)), "=", 0).WithPrefix()}
	if err == nil {
		if n.a.Nlink > 0 {
			_, err := e.Client.Delete(ctx, state.OrphanKey(fs, ino)) // linked again (fsck repair): not an orphan
			return false, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, ino)), "=", n.rev))
	} else if ferr, ok := err.(*Error); !ok || ferr.Errno != syscall.ENOENT {
		return false, err
	}
	resp, err := e.Client.Txn(ctx).If(cmps...).Then(
		clientv3.OpDelete(state.InodeKey(fs, ino), clientv3.WithPrefix()),
		clientv3.OpDelete(state.BlockPrefix(fs, ino), clientv3.WithPrefix()),
		clientv3.OpDelete(state.LockPrefix(fs, ino), clientv3.WithPrefix()),
		clientv3.OpDelete(state.OrphanKey(fs, ino)),
	).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// Compact merges a block's slices into one new chunk.
func (e *Engine) Compact(ctx context.Context, fs string, ino uint64, blk uint32) error {
	k := state.BlockKey(fs, ino, blk)
	resp, err := e.Client.Get(ctx, k)
	if err != nil || len(resp.Kvs) == 0 {
		return err
	}
	b := Blocks{}
	if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil || len(b.Slices) < 2 {
		return err
	}
	lo, hi := uint32(fsproto.BlockSize), uint32(0)
	for _, s := range b.Slices {
		lo, hi = min(lo, s.Off), max(hi, s.Off+s.Len)
	}
	buf := make([]byte, hi-lo)
	cache := map[string][]byte{}
	for _, s := range b.Slices {
		data, ok := cache[s.ID]
		if !ok {
			if data, err = e.Chunks.Get(ctx, fs, s.ID); err != nil {
				return err
			}
			cache[s.ID] = data
		}
		if int(s.ChunkOff+s.Len) > len(data) {
			return fmt.Errorf("chunk %s shorter than its slice", s.ID)
		}
		copy(buf[s.Off-lo:], data[s.ChunkOff:s.ChunkOff+s.Len])
	}
	id := fsproto.NewChunkID()
	if err := e.Chunks.Put(ctx, fs, id, buf); err != nil {
		return err
	}
	merged := Blocks{Slices: []fsproto.Slice{{Off: lo, Len: hi - lo, ID: id}}, By: "compaction"}
	txn, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(k, marshal(&merged))).Commit()
	if err != nil {
		return err
	}
	if !txn.Succeeded {
		return e.Chunks.Delete(ctx, fs, id) // the block changed; a later pass compacts it
	}
	return nil
}

// refs returns every chunk the file system's committed metadata names.
func (e *Engine) refs(ctx context.Context, fs string, rev int64) (map[string]bool, error) {
	refs := map[string]bool{}
	err := e.scan(ctx, state.FSMetaPrefix(fs)+"b/", rev, func(_ string, v []byte, _, _ int64) error {
		b := Blocks{}
		if err := json.Unmarshal(v, &b); err != nil {
			return err
		}
		for _, s := range b.Slices {
			refs[s.ID] = true
		}
		return nil
	})
	return refs, err
}

// CollectChunks deletes chunks older than ChunkGrace that no committed
// metadata references. Candidates are listed, then the gc key is bumped,
// then the references are read. A commit accepts only chunks younger than
// ChunkGrace/2 and is guarded on the gc key it read before checking ages:
// a commit that checked before the bump fails and checks again (and the
// candidate is too old by then); one that landed before the bump is among
// the references read.
func (e *Engine) CollectChunks(ctx context.Context, fs string) (int, error) {
	var old []string
	if err := e.Chunks.Walk(ctx, fs, func(id string, age time.Duration, _ int64) {
		if age > e.ChunkGrace {
			old = append(old, id)
		}
	}); err != nil {
		return 0, err
	}
	if len(old) == 0 {
		return 0, nil
	}
	if _, err := e.Client.Put(ctx, state.FSGCKey(fs), ""); err != nil {
		return 0, err
	}
	refs, err := e.refs(ctx, fs, 0)
	if err != nil {
		return 0, err
	}
	var gone []string
	for _, id := range old {
		if !refs[id] {
			gone = append(gone, id)
		}
	}
	if err := e.Chunks.DeleteMany(ctx, fs, gone); err != nil {
		return 0, err
	}
	return len(gone), nil
}

// FsckReport is what a check found.
type FsckReport struct {
	FS             string   `json:"fileSystemId"`
	Inodes         int      `json:"inodes"`
	Entries        int      `json:"entries"`
	Blocks         int      `json:"blocks"`
	Chunks         int      `json:"chunks"`
	InFlightChunks int      `json:"inFlightChunks"`
	Orphans        int      `json:"orphans"`
	Problems       []string `json:"problems"`
	Repaired       int      `json:"repaired"`
}

// Fsck checks one file system's metadata at one etcd revision and its
// chunk references: entries point at inodes of the right type, link
// counts match the entries, directories know their parent, every block
// belongs to an inode, every referenced chunk exists, and no old chunk is
// unreferenced. With repair it fixes what can be fixed safely: dangling
// entries and blocks are deleted, link counts corrected, unreachable
// inodes orphaned (and so freed), leaked chunks deleted. Missing chunks are
// reported, never "repaired": that would hide data loss.
func (e *Engine) Fsck(ctx context.Context, fs string, repair bool) (*FsckReport, error) {
	if !e.Chunks.Keeps() {
		return nil, fmt.Errorf("this server keeps no file data (it has no --data-dir): run fsck on the one that does")
	}
	if _, err := e.GetFS(ctx, fs); err != nil {
		return nil, err
	}
	head, err := e.Client.Get(ctx, state.FSMetaPrefix(fs), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	rev := head.Header.Revision
	rep := &FsckReport{FS: fs, Problems: []string{}}
	type inode struct {
		a    fsproto.Attr
		rev  int64
		refs int // entries naming it
		subs int // subdirectories (directories)
	}
	inodes := map[uint64]*inode{}
	type ent struct {
		parent uint64
		name   string
		d      Dentry
		rev    int64
	}
	var ents []ent
	blocks := map[uint64][]string{}
	orphans := map[uint64]bool{}
	refs := map[string]bool{}
	pfx := state.FSMetaPrefix(fs)
	err = e.scan(ctx, pfx, rev, func(k string, v []byte, modRev, _ int64) error {
		rest := strings.TrimPrefix(k, pfx)
		kind, rest, _ := strings.Cut(rest, "/")
		switch kind {
		case "i":
			if strings.HasSuffix(rest, "/t") {
				return nil
			}
			ino, _ := strconv.ParseUint(rest, 16, 64)
			in := &inode{rev: modRev}
			if err := decode(k, v, &in.a); err != nil {
				return err
			}
			in.a.Ino = ino
			inodes[ino] = in
		case "d":
			ps, name, _ := strings.Cut(rest, "/")
			p, _ := strconv.ParseUint(ps, 16, 64)
			en := ent{parent: p, name: name, rev: modRev}
			if err := decode(k, v, &en.d); err != nil {
				return err
			}
			ents = append(ents, en)
		case "b":
			is, _, _ := strings.Cut(rest, "/")
			ino, _ := strconv.ParseUint(is, 16, 64)
			blocks[ino] = append(blocks[ino], k)
			b := Blocks{}
			if err := decode(k, v, &b); err != nil {
				return err // its chunks would look unreferenced: check nothing
			}
			for _, s := range b.Slices {
				refs[s.ID] = true
			}
			rep.Blocks++
		case "o":
			ino, _ := strconv.ParseUint(rest, 16, 64)
			orphans[ino] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Inodes, rep.Entries, rep.Orphans = len(inodes), len(ents), len(orphans)
	problem := func(format string, a ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...)) }
	fix := func(cmps []clientv3.Cmp, ops ...clientv3.Op) {
		if !repair {
			return
		}
		resp, err := e.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err == nil && resp.Succeeded {
			rep.Repaired++
		}
	}
	if _, ok := inodes[fsproto.RootIno]; !ok {
		problem("root directory is missing")
	}
	for _, en := range ents {
		p, pok := inodes[en.parent]
		in, ok := inodes[en.d.Ino]
		k := state.DentryKey(fs, en.parent, en.name)
		switch {
		case !pok || !p.a.IsDir():
			problem("entry %q in missing directory %d", en.name, en.parent)
			fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", en.rev)}, clientv3.OpDelete(k))
		case !ok:
			problem("entry %q in directory %d names missing inode %d", en.name, en.parent, en.d.Ino)
			fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", en.rev)}, clientv3.OpDelete(k))
		case in.a.Mode&syscall.S_IFMT != en.d.Mode:
			problem("entry %q in directory %d has type %o, inode %d has %o", en.name, en.parent, en.d.Mode, en.d.Ino, in.a.Mode&syscall.S_IFMT)
		default:
			in.refs++
			if in.a.IsDir() {
				p.subs++
				if in.a.Parent != en.parent {
					problem("directory %d is in %d but records parent %d", in.a.Ino, en.parent, in.a.Parent)
					a := in.a
					a.Parent = en.parent
					fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, a.Ino)), "=", in.rev)}, clientv3.OpPut(state.InodeKey(fs, a.Ino), storeAttr(&a)))
				}
			}
		}
	}
	inos := make([]uint64, 0, len(inodes))
	for ino := range inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		in := inodes[ino]
		if ino == fsproto.RootIno {
			continue
		}
		want := uint32(in.refs)
		if in.a.IsDir() {
			if in.refs > 1 {
				problem("directory %d has %d entries", ino, in.refs)
			}
			want = 2 + uint32(in.subs)
			if in.refs == 0 {
				problem("directory %d is unreachable", ino)
				fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, ino)), "=", in.rev)},
					clientv3.OpDelete(state.InodeKey(fs, ino), clientv3.WithPrefix()))
				continue
			}
		}
		if in.refs == 0 && in.a.Nlink == 0 {
			if !orphans[ino] {
				problem("unlinked inode %d is not queued to be freed", ino)
				fix(nil, clientv3.OpPut(state.OrphanKey(fs, ino), marshal(&Orphan{Since: now()})))
			}
			continue
		}
		if in.a.Nlink != want {
			problem("inode %d has link count %d, %d entries name it", ino, in.a.Nlink, want)
			a := in.a
			a.Nlink = want
			ops := []clientv3.Op{clientv3.OpPut(state.InodeKey(fs, ino), storeAttr(&a))}
			if want == 0 {
				ops = append(ops, clientv3.OpPut(state.OrphanKey(fs, ino), marshal(&Orphan{Since: now()})))
			}
			fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, ino)), "=", in.rev)}, ops...)
		}
	}
	if root, ok := inodes[fsproto.RootIno]; ok && root.a.Nlink != 2+uint32(root.subs) {
		problem("root directory has link count %d, want %d", root.a.Nlink, 2+root.subs)
		a := root.a
		a.Nlink = 2 + uint32(root.subs)
		fix([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, fsproto.RootIno)), "=", root.rev)}, clientv3.OpPut(state.InodeKey(fs, fsproto.RootIno), storeAttr(&a)))
	}
	for ino, keys := range blocks {
		if _, ok := inodes[ino]; !ok {
			problem("%d blocks belong to missing inode %d", len(keys), ino)
			fix(nil, clientv3.OpDelete(state.BlockPrefix(fs, ino), clientv3.WithPrefix()))
		}
	}
	stored := map[string]bool{}
	var leaked []string
	err = e.Chunks.Walk(ctx, fs, func(id string, age time.Duration, _ int64) {
		stored[id] = true
		rep.Chunks++
		switch {
		case refs[id]:
		case age <= e.ChunkGrace:
			rep.InFlightChunks++
		default:
			problem("chunk %s is referenced by nothing (leaked)", id)
			leaked = append(leaked, id)
		}
	})
	if err != nil {
		return nil, err
	}
	if repair && len(leaked) > 0 {
		// Read the references again now: only a chunk still unreferenced goes.
		if _, err := e.Client.Put(ctx, state.FSGCKey(fs), ""); err != nil {
			return nil, err
		}
		cur, err := e.refs(ctx, fs, 0)
		if err != nil {
			return nil, err
		}
		for _, id := range leaked {
			if !cur[id] && e.Chunks.Delete(ctx, fs, id) == nil {
				rep.Repaired++
			}
		}
	}
	var missing []string
	for id := range refs {
		if !stored[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	for _, id := range missing {
		problem("chunk %s is referenced but missing (data lost)", id)
	}
	return rep, nil
}
