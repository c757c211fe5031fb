package fsmeta

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/berth-project/berth/internal/fsproto"
)

func TestVisible(t *testing.T) {
	s := func(off, n uint32, id string) fsproto.Slice { return fsproto.Slice{Off: off, Len: n, ID: id} }
	cases := []struct {
		in, want []fsproto.Slice
	}{
		{nil, nil},
		{[]fsproto.Slice{s(0, 10, "a")}, []fsproto.Slice{s(0, 10, "a")}},
		// A whole overwrite hides the first write.
		{[]fsproto.Slice{s(0, 10, "a"), s(0, 10, "b")}, []fsproto.Slice{s(0, 10, "b")}},
		// A partial overwrite hides nothing.
		{[]fsproto.Slice{s(0, 10, "a"), s(5, 10, "b")}, []fsproto.Slice{s(0, 10, "a"), s(5, 10, "b")}},
		// Two later slices that touch hide one under both.
		{[]fsproto.Slice{s(2, 6, "a"), s(0, 5, "b"), s(5, 5, "c")}, []fsproto.Slice{s(0, 5, "b"), s(5, 5, "c")}},
		// An earlier slice never hides a later one.
		{[]fsproto.Slice{s(0, 20, "a"), s(5, 5, "b")}, []fsproto.Slice{s(0, 20, "a"), s(5, 5, "b")}},
		// Disjoint later slices with a gap between them hide nothing.
		{[]fsproto.Slice{s(0, 10, "a"), s(0, 4, "b"), s(6, 4, "c")}, []fsproto.Slice{s(0, 10, "a"), s(0, 4, "b"), s(6, 4, "c")}},
	}
	for i, c := range cases {
		if got := fsproto.Visible(c.in); !slices.Equal(got, c.want) {
			t.Errorf("case %d: fsproto.Visible(%v) = %v, want %v", i, c.in, got, c.want)
		}
	}
}

// TestVisibleKeepsContent checks, on random slice lists, that the visible
// slices give every byte of the block the value all slices give it, and
// that no slice kept is hidden by later ones.
func TestVisibleKeepsContent(t *testing.T) {
	const size = 64
	apply := func(ss []fsproto.Slice) [size]string {
		var b [size]string
		for _, s := range ss {
			for i := s.Off; i < s.Off+s.Len; i++ {
				b[i] = s.ID
			}
		}
		return b
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 5000; round++ {
		var ss []fsproto.Slice
		for i := 0; i < 1+r.IntN(8); i++ {
			off := uint32(r.IntN(size))
			ss = append(ss, fsproto.Slice{Off: off, Len: 1 + uint32(r.IntN(size-int(off))), ID: fmt.Sprint(i)})
		}
		vis := fsproto.Visible(ss)
		if apply(vis) != apply(ss) {
			t.Fatalf("fsproto.Visible(%v) = %v changes the block", ss, vis)
		}
		for i, s := range vis {
			later := apply(vis[i+1:])
			hidden := true
			for j := s.Off; j < s.Off+s.Len; j++ {
				hidden = hidden && later[j] != ""
			}
			if hidden {
				t.Fatalf("fsproto.Visible(%v) kept %v, which later slices hide", ss, s)
			}
		}
	}
}
