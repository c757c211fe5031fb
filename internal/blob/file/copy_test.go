package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/blob"
)

// TestCopyIsVerifiedAndResumable: Copy moves every object, skips what the
// destination already holds, and refuses a corrupt chunk.
func TestCopyIsVerifiedAndResumable(t *testing.T) {
	ctx := context.Background()
	src, dst := New(t.TempDir()), New(t.TempDir())
	chunks := blob.Chunks{Objects: src}
	for _, s := range []string{"a", "bb", "ccc"} {
		if err := chunks.Put(ctx, blob.Key([]byte(s)), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	src.Put(ctx, "fs/fs-0123456789/ab/0123456789abcdef0123456789abcdef", []byte("file data"))
	// A copy that stopped after one object.
	k := blob.Key([]byte("a"))
	dst.Put(ctx, k[:2]+"/"+k, []byte("a"))
	st, err := blob.Copy(ctx, src, dst, "", nil)
	if err != nil || st.Copied != 3 || st.Skipped != 1 {
		t.Fatalf("copy: %+v %v", st, err)
	}
	for _, s := range []string{"a", "bb", "ccc"} {
		if got, err := (blob.Chunks{Objects: dst}).Get(ctx, blob.Key([]byte(s))); err != nil || string(got) != s {
			t.Fatalf("chunk %q at the destination: %q %v", s, got, err)
		}
	}
	if st, err := blob.Copy(ctx, src, dst, "", nil); err != nil || st.Copied != 0 || st.Skipped != 4 {
		t.Fatalf("a second run: %+v %v", st, err)
	}
	bad := blob.Key([]byte("bb"))
	os.WriteFile(filepath.Join(src.root, bad[:2], bad), []byte("not bb"), 0o600)
	if _, err := blob.Copy(ctx, src, New(t.TempDir()), "", nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a corrupt chunk: %v", err)
	}
}
