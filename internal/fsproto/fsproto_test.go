package fsproto

import "testing"

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		id        string
		fs, chunk bool
	}{
		{"fs-0123abcd", true, false},
		{"fs-" + "0123456789abcdef0123456789abcdef01234567", true, false},
		{"fs-" + "0123456789abcdef0123456789abcdef012345678", false, false},
		{"fs-0123abc", false, false},
		{"fs-0123ABCD", false, false},
		{"fs-0123abcg", false, false},
		{"fx-0123abcd", false, false},
		{"", false, false},
		{"0123456789abcdef0123456789abcdef", false, true},
		{"0123456789abcdef0123456789abcde", false, false},
		{"0123456789abcdef0123456789abcdef0", false, false},
		{"0123456789abcdef0123456789abcdeF", false, false},
		{"../3456789abcdef0123456789abcdef", false, false},
	} {
		if got := ValidFSID(c.id); got != c.fs {
			t.Errorf("ValidFSID(%q) = %v, want %v", c.id, got, c.fs)
		}
		if got := ValidChunkID(c.id); got != c.chunk {
			t.Errorf("ValidChunkID(%q) = %v, want %v", c.id, got, c.chunk)
		}
	}
	if id := NewChunkID(); !ValidChunkID(id) {
		t.Errorf("NewChunkID() = %q, not a chunk id", id)
	}
}
