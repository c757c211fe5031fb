package fsmeta

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/state"
)

// Issued chunk ids. On a store mounts write to themselves, the server
// chooses each new chunk's id: 6 random bytes, the time it was issued (4
// bytes, Unix seconds) and 6 bytes of an HMAC over the file system, both
// and a key every server of the cluster shares. An issued id was never
// used before (it cannot name a chunk that exists, so no lookup in the
// store is needed before a URL to write it is signed), and its time is
// the chunk's age at commit (no lookup there either). A client cannot
// forge one.

// state.FSChunkKeyKey() holds the cluster's chunk id key in etcd.

// LoadChunkKey reads the cluster's chunk id key, making it on first use.
func (e *Engine) LoadChunkKey(ctx context.Context) error {
	key := make([]byte, 32)
	rand.Read(key)
	if _, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(state.FSChunkKeyKey()), "=", 0)).
		Then(clientv3.OpPut(state.FSChunkKeyKey(), hex.EncodeToString(key))).Commit(); err != nil {
		return fmt.Errorf("chunk id key: %w", err)
	}
	resp, err := e.Client.Get(ctx, state.FSChunkKeyKey())
	if err != nil {
		return fmt.Errorf("chunk id key: %w", err)
	}
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("chunk id key: not in etcd after it was made")
	}
	k, err := hex.DecodeString(string(resp.Kvs[0].Value))
	if err != nil || len(k) != 32 {
		return fmt.Errorf("chunk id key in etcd is malformed")
	}
	e.chunkKey = k
	return nil
}

func (e *Engine) chunkMAC(fs string, head []byte) []byte {
	m := hmac.New(sha256.New, e.chunkKey)
	m.Write([]byte(fs))
	m.Write(head)
	return m.Sum(nil)[:6]
}

// IssueChunkID returns a new chunk id of fs, issued now.
func (e *Engine) IssueChunkID(fs string, now time.Time) string {
	var id [16]byte
	rand.Read(id[:6])
	binary.BigEndian.PutUint32(id[6:10], uint32(now.Unix()))
	copy(id[10:], e.chunkMAC(fs, id[:10]))
	return hex.EncodeToString(id[:])
}

// issuedAt says when an issued id was issued; ok is false for an id this
// cluster did not issue (one a client chose).
func (e *Engine) issuedAt(fs, id string) (time.Time, bool) {
	if len(e.chunkKey) == 0 {
		return time.Time{}, false
	}
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 || !hmac.Equal(b[10:], e.chunkMAC(fs, b[:10])) {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint32(b[6:10])), 0), true
}

// chunkAge is how old a chunk a commit names is: from its id when this
// cluster issued it, else from the store.
func (e *Engine) chunkAge(ctx context.Context, fs, id string) (time.Duration, error) {
	if at, ok := e.issuedAt(fs, id); ok {
		return time.Since(at), nil
	}
	return e.Chunks.Age(ctx, fs, id)
}
