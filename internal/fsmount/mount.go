package fsmount

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/fsproto"
)

// Options configure a mount.
type Options struct {
	Endpoint    string
	FS          string
	Mountpoint  string
	Credentials *aws.Credentials
	Token       string // a task's mount token (instead of credentials)
	AccessPoint string
	Zone        string
	// CA, when set, makes the mount's traffic TLS, verified against it.
	CA         []byte
	Log        *slog.Logger
	CacheBytes int // chunk cache in memory; default 256 MiB
	// CacheDir, when set, keeps fetched chunks on this host's disk too,
	// shared by every mount that names it, up to CacheSize bytes.
	CacheDir  string
	CacheSize int64
	Debug     bool
	// MaxInodes bounds the inodes (cached entries) the mount keeps for
	// the kernel, about 250 bytes each: past it, it asks the kernel to
	// forget idle ones. 0: DefaultMaxInodes; negative: no bound.
	MaxInodes int
}

// DefaultMaxInodes is a mount's default bound on cached inodes: about
// 120 MiB of the mount's memory.
const DefaultMaxInodes = 500_000

// Mount is a served mount.
type Mount struct {
	fs     *FS
	srv    *fuse.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mountpoint string
}

// Start opens a session with the server and mounts the file system. The
// mount is served until Unmount or until it is unmounted from outside.
func Start(ctx context.Context, o Options) (*Mount, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 20
	}
	c := &Conn{Endpoint: o.Endpoint, FS: o.FS, Credentials: o.Credentials, Token: o.Token}
	var tlsCfg *tls.Config
	if o.CA != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CA) {
			return nil, fmt.Errorf("the CA certificate is not PEM")
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		var servers []string
		for _, u := range strings.Split(o.Endpoint, ",") {
			servers = append(servers, "https://"+strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(u), "http://"), "https://"))
		}
		c.Endpoint = strings.Join(servers, ",")
	}
	c.init(tlsCfg)
	host, _ := os.Hostname()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, e := c.Op(octx, &fsproto.Request{Op: fsproto.OpSessionOpen, Host: host, Name: o.Mountpoint, AccessPoint: o.AccessPoint, Zone: o.Zone})
	switch {
	case e == syscall.ENODEV:
		return nil, fmt.Errorf("file system %s does not exist", o.FS)
	case e != 0 && resp != nil && resp.Message != "":
		return nil, fmt.Errorf("mount of %s refused: %s", o.FS, resp.Message)
	case e != 0:
		return nil, fmt.Errorf("open a session with %s: %w", o.Endpoint, e)
	}
	c.session = resp.Session
	rctx, rcancel := context.WithCancel(context.Background())
	get := c.fetch
	var dc *diskCache
	if o.CacheDir != "" {
		var err error
		if dc, err = openDiskCache(o.CacheDir, o.CacheSize); err != nil {
			rcancel()
			c.Op(context.Background(), &fsproto.Request{Op: fsproto.OpSessionClose})
			return nil, fmt.Errorf("chunk cache %s: %w", o.CacheDir, err)
		}
		get = func(ctx context.Context, id string) (fetched, error) {
			if b, ok := dc.get(c.FS, id); ok {
				return fetched{data: b, pooled: true}, nil
			}
			// Fresh from the store, it is offered to the disk cache; a
			// chunk the server keeps on its own disk is not worth a
			// second copy on this one.
			return c.fetch(ctx, id)
		}
	}
	f := newFS(rctx, c, o.Log, o.CacheBytes, get)
	if dc != nil {
		f.cache.fill = func(id string, data []byte, crc uint32, done func()) bool { return dc.offer(c.FS, id, data, crc, done) }
	}
	if o.MaxInodes == 0 {
		o.MaxInodes = DefaultMaxInodes
	}
	if o.MaxInodes > 0 {
		go f.evict(rctx, o.MaxInodes, 500*time.Millisecond)
	}
	srv, err := fuse.NewServer(f, o.Mountpoint, &fuse.MountOptions{
		FsName: "berth:" + o.FS, Name: "berth", AllowOther: os.Geteuid() == 0, EnableLocks: true,
		MaxWrite: 1 << 20, MaxReadAhead: 4 << 20, DirectMount: true,
		Options: []string{"default_permissions"}, Debug: o.Debug, MaxBackground: 64,
	})
	if err != nil {
		rcancel()
		c.Op(context.Background(), &fsproto.Request{Op: fsproto.OpSessionClose})
		return nil, fmt.Errorf("mount %s: %w", o.Mountpoint, err)
	}
	m := &Mount{fs: f, srv: srv, cancel: rcancel, done: make(chan struct{}), mountpoint: o.Mountpoint}
	go func() {
		srv.Serve()
		m.finish()
	}()
	if err := srv.WaitMount(); err != nil {
		m.Unmount()
		return nil, err
	}
	setReadAhead(o.Mountpoint, readAheadKiB, o.Log)
	go m.keepAlive(rctx, time.Duration(resp.LeaseTTL)*time.Second/3)
	go c.Events(rctx, f.onEvent, func() {
		// Changes were missed while the stream was down.
		f.attrGen.Add(1)
		f.mu.Lock()
		clear(f.whole)
		nodes := slices.Collect(maps.Keys(f.nodes))
		f.mu.Unlock()
		for _, ino := range nodes {
			f.forgetXattrs(ino)
		}
	})
	return m, nil
}

// Session is the mount's session id.
func (m *Mount) Session() string { return m.fs.c.session }

// Done is closed when the mount has ended.
func (m *Mount) Done() <-chan struct{} { return m.done }

func (m *Mount) keepAlive(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		kctx, cancel := context.WithTimeout(ctx, every)
		_, e := m.fs.c.Op(kctx, &fsproto.Request{Op: fsproto.OpSessionKeepAlive})
		cancel()
		if e == syscall.ESTALE {
			// The lease lapsed (the server was unreachable for too long):
			// locks this mount held are gone. Open a new session so the
			// mount keeps working, and say so.
			m.fs.log.Error("mount session expired; its locks were released", "fs", m.fs.c.FS)
			host, _ := os.Hostname()
			if resp, e := m.fs.c.Op(ctx, &fsproto.Request{Op: fsproto.OpSessionOpen, Host: host, Session: "-"}); e == 0 {
				m.fs.c.session = resp.Session
			}
		}
	}
}

// finish flushes nothing (the kernel flushed every open file before the
// unmount) and closes the session, releasing its locks.
func (m *Mount) finish() {
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.fs.c.Op(ctx, &fsproto.Request{Op: fsproto.OpSessionClose})
		m.cancel()
		close(m.done)
	})
}

// Unmount unmounts (lazily if the mount is busy) and waits for the end.
func (m *Mount) Unmount() error {
	err := m.srv.Unmount()
	if err != nil {
		if uerr := syscall.Unmount(m.mountpoint, syscall.MNT_DETACH); uerr != nil && !errors.Is(uerr, syscall.EINVAL) {
			err = errors.Join(err, uerr)
		}
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("unmount: %w", err)
	}
}

// onEvent drops what the kernel caches about an entry or inode another
// mount changed.
func (f *FS) onEvent(ev fsproto.Event) {
	if ev.By != "" && ev.By == f.c.session {
		return
	}
	f.attrGen.Add(1)
	f.dirChanged(ev.Parent, ev.Ino)
	f.notWhole(ev.Parent, ev.Ino)
	if ev.Ino != 0 {
		f.forgetXattrs(ev.Ino)
	}
	if f.srv == nil {
		return
	}
	if ev.Name != "" {
		if f.known(ev.Parent) != nil {
			f.srv.EntryNotify(ev.Parent, ev.Name)
		}
		return
	}
	if ev.Ino == 0 {
		// A change in a directory whose names this session is not told.
		if f.known(ev.Parent) != nil {
			f.srv.InodeNotify(ev.Parent, 0, 0)
		}
		return
	}
	n := f.known(ev.Ino)
	if n == nil {
		return
	}
	if ev.Data {
		f.srv.InodeNotify(ev.Ino, 0, 0)
		return
	}
	f.srv.InodeNotify(ev.Ino, -1, 0)
	n.mu.Lock()
	open := n.opens > 0 && !n.held
	n.mu.Unlock()
	if open {
		// Another host may have unlinked a file this mount has open.
		go func() {
			resp, e := f.c.Op(f.ctx, &fsproto.Request{Op: fsproto.OpGetattr, Ino: ev.Ino})
			if e == 0 && resp.Attr.Nlink == 0 {
				f.holdIfOpen(ev.Ino)
			}
		}()
	}
}

// readAheadKiB is the kernel's read-ahead for a mount: as much as one
// block, so a sequential reader's requests come 1 MiB at a time (the most
// one FUSE request carries) rather than the kernel's default 128 KiB.
const readAheadKiB = 4096

// setReadAhead raises the read-ahead of the mount's backing device (the
// kernel caps what a FUSE server asks for at mount time to its default).
func setReadAhead(mountpoint string, kib int, log *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(fmt.Sprint(kib)), 0); err != nil {
		log.Debug("read-ahead stays the kernel's default", "err", err)
	}
}
