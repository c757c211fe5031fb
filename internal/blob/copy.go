package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// CopyStats says what Copy did.
type CopyStats struct {
	Copied, Skipped int
	Bytes           int64
}

// Copy copies every object under prefix from one store to another and
// verifies each: what the destination returns must hash as the source's
// bytes did, and a chunk's bytes must hash to its key. An object the
// destination already holds with the same size and content is skipped,
// so a copy that stopped half-way is resumed by running it again.
func Copy(ctx context.Context, from, to Objects, prefix string, progress func(CopyStats)) (CopyStats, error) {
	var st CopyStats
	var names []Info
	if err := from.List(ctx, prefix, func(in Info) error {
		names = append(names, in)
		return nil
	}); err != nil {
		return st, fmt.Errorf("list %s: %w", from, err)
	}
	for _, in := range names {
		data, err := from.Get(ctx, in.Name)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return st, fmt.Errorf("read %s from %s: %w", in.Name, from, err)
		}
		if key := in.Name[strings.IndexByte(in.Name, '/')+1:]; ValidKey(key) && in.Name == chunkName(key) && Key(data) != key {
			return st, fmt.Errorf("%s in %s is corrupt: its bytes do not hash to its key", in.Name, from)
		}
		sum := sha256.Sum256(data)
		if have, err := to.Get(ctx, in.Name); err == nil && sha256.Sum256(have) == sum {
			st.Skipped++
			continue
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return st, fmt.Errorf("read %s from %s: %w", in.Name, to, err)
		}
		if err := to.Put(ctx, in.Name, data); err != nil {
			return st, fmt.Errorf("write %s to %s: %w", in.Name, to, err)
		}
		back, err := to.Get(ctx, in.Name)
		if err != nil {
			return st, fmt.Errorf("verify %s in %s: %w", in.Name, to, err)
		}
		if !bytes.Equal(back, data) {
			return st, fmt.Errorf("verify %s in %s: read back %d bytes that differ from the %d written", in.Name, to, len(back), len(data))
		}
		st.Copied++
		st.Bytes += int64(len(data))
		if progress != nil {
			progress(st)
		}
	}
	return st, nil
}

// Prefixed is a store whose names all sit below prefix in another.
type Prefixed struct {
	Objects Objects
	Prefix  string // ends in "/"
}

func (p Prefixed) String() string { return p.Objects.String() + " (" + p.Prefix + ")" }
func (p Prefixed) Put(ctx context.Context, name string, data []byte) error {
	return p.Objects.Put(ctx, p.Prefix+name, data)
}
func (p Prefixed) Get(ctx context.Context, name string) ([]byte, error) {
	return p.Objects.Get(ctx, p.Prefix+name)
}
func (p Prefixed) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	return p.Objects.GetRange(ctx, p.Prefix+name, off, n)
}
func (p Prefixed) Stat(ctx context.Context, name string) (Info, error) {
	in, err := p.Objects.Stat(ctx, p.Prefix+name)
	in.Name = name
	return in, err
}
func (p Prefixed) Touch(ctx context.Context, name string) (bool, error) {
	return p.Objects.Touch(ctx, p.Prefix+name)
}
func (p Prefixed) Delete(ctx context.Context, name string) error {
	return p.Objects.Delete(ctx, p.Prefix+name)
}
func (p Prefixed) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return p.Objects.List(ctx, p.Prefix+prefix, func(in Info) error {
		in.Name = in.Name[len(p.Prefix):]
		return fn(in)
	})
}
