package vpc

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/berth-project/berth/internal/state/etcdtest"
)

func TestZoneOfSubnet(t *testing.T) {
	for in, want := range map[string]string{"subnet-us-east-1a": "us-east-1a", "subnet-local-a": "local-a", "subnet-": "", "subnet-A": "", "sub-a": "", "subnet-a_b": ""} {
		got, ok := ZoneOfSubnet(in)
		if got != want || ok != (want != "") {
			t.Errorf("ZoneOfSubnet(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	if DNSName("10.208.3.7") != "ip-10-208-3-7.ec2.internal" {
		t.Fatal(DNSName("10.208.3.7"))
	}
}

// Many instances asking at once get distinct blocks; an instance asking
// again gets its own block back; a released block is given again; a
// zone keeps its subnet.
func TestBlocksAreDistinctAndStable(t *testing.T) {
	cli := etcdtest.Start(t)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			zone := []string{"a", "b", "c"}[i%3]
			b, err := EnsureBlock(ctx, cli, "default", fmt.Sprintf("i%02d", i), zone, "")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := seen[b.CIDR]; dup {
				t.Errorf("block %s given to %s and i%02d", b.CIDR, other, i)
			}
			seen[b.CIDR] = fmt.Sprintf("i%02d", i)
		}(i)
	}
	wg.Wait()
	subnets, blocks, err := List(ctx, cli)
	if err != nil || len(subnets) != 3 || len(blocks) != 12 {
		t.Fatalf("list: %v %d subnets %d blocks", err, len(subnets), len(blocks))
	}
	sa, _ := EnsureSubnet(ctx, cli, "a")
	b0, _ := EnsureBlock(ctx, cli, "default", "i00", "a", "")
	if b0.SubnetCIDR != sa.CIDR || b0.Gateway != b0.CIDR[:len(b0.CIDR)-4]+"1" {
		t.Fatalf("block %+v in subnet %+v", b0, sa)
	}
	again, _ := EnsureBlock(ctx, cli, "default", "i00", "a", "")
	if again != b0 {
		t.Fatalf("asking again moved the block: %+v then %+v", b0, again)
	}
	if err := Release(ctx, cli, "default", "i00"); err != nil {
		t.Fatal(err)
	}
	fresh, _ := EnsureBlock(ctx, cli, "default", "new", "a", "")
	if fresh.CIDR != b0.CIDR {
		t.Fatalf("released block %s not given again (got %s)", b0.CIDR, fresh.CIDR)
	}
	// An instance that moved zone gets a block of its new zone's subnet.
	moved, err := EnsureBlock(ctx, cli, "default", "new", "b", "")
	sb, _ := EnsureSubnet(ctx, cli, "b")
	if err != nil || moved.SubnetCIDR != sb.CIDR {
		t.Fatalf("moved instance: %v %+v", err, moved)
	}
	if _, blocks, _ := List(ctx, cli); len(blocks) != 12 {
		t.Fatalf("blocks after the move: %d", len(blocks))
	}
	// A new host address is recorded; the block stays.
	readdr, err := EnsureBlock(ctx, cli, "default", "new", "b", "192.0.2.7")
	if err != nil || readdr.CIDR != moved.CIDR || readdr.HostAddress != "192.0.2.7" {
		t.Fatalf("new address: %v %+v", err, readdr)
	}
	if bs, _ := ClusterBlocks(ctx, cli, "default"); len(bs) != 12 {
		t.Fatalf("cluster blocks: %d", len(bs))
	}
}
