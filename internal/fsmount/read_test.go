package fsmount

import (
	"testing"

	"github.com/berth-project/berth/internal/fsproto"
)

// TestVisiblePieces checks which pieces a read fetches: only those that
// later ones do not hide within the range read.
func TestVisiblePieces(t *testing.T) {
	p := func(blk, off, n uint32, id string) piece {
		return piece{blk: blk, s: fsproto.Slice{Off: off, Len: n, ID: id}}
	}
	ids := func(ps []piece) (out []string) {
		for _, x := range ps {
			out = append(out, x.s.ID)
		}
		return out
	}
	cases := []struct {
		name     string
		in       []piece
		off, end uint64
		want     []string
	}{
		{"rewritten block", []piece{p(0, 0, bs, "old"), p(0, 0, bs, "new")}, 0, 1 << 20, []string{"new"}},
		// "old" shows outside the read only: not needed for it.
		{"hidden within the read", []piece{p(0, 0, bs, "old"), p(0, 0, 1<<20, "new")}, 0, 1 << 20, []string{"new"}},
		{"shows within the read", []piece{p(0, 0, bs, "old"), p(0, 0, 1<<20, "new")}, 0, 2 << 20, []string{"old", "new"}},
		{"outside the read", []piece{p(0, 0, 4096, "a"), p(0, 8192, 4096, "b")}, 8192, 12288, []string{"b"}},
		// Coverage is per block: a piece of block 1 hides nothing of block 0.
		{"two blocks", []piece{p(0, bs-4096, 4096, "a"), p(1, 0, 4096, "b")}, bs - 4096, bs + 4096, []string{"a", "b"}},
	}
	for _, c := range cases {
		got := ids(visiblePieces(c.in, c.off, c.end))
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			}
		}
	}
}
