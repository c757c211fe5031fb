// Package vpc is Berth's task network, in the manner of a VPC: one
// subnet per zone (subnet-ZONE, as EFS mount targets name them), each
// with an address range, and within a subnet one block of addresses per
// container instance, from which the instance's awsvpc tasks take their
// addresses. Subnets and blocks are allocated in etcd, so every server
// agrees; an instance keeps its block until it is deregistered.
//
// Layout: the VPC is 10.208.0.0/12; subnet number N (0–15) is
// 10.(208+N).0.0/16; block M (0–255) of a subnet is its M-th /24, whose
// first address is the instance's gateway.
package vpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/state"
)

// CIDR is the range every task address comes from.
const CIDR = "10.208.0.0/12"

// ID is the VPC's id, as EFS mount targets report it.
const ID = "vpc-berth"

const (
	maxSubnets = 16
	maxBlocks  = 256
)

// Subnet is one zone's address range.
type Subnet struct {
	SubnetID string `json:"subnetId"`
	Zone     string `json:"availabilityZone"`
	CIDR     string `json:"cidrBlock"`
	Index    int    `json:"index"`
}

// Block is the part of a subnet one container instance gives its tasks.
type Block = agentapi.NetworkBlock

// SubnetID is the id of a zone's subnet.
func SubnetID(zone string) string { return "subnet-" + zone }

// ZoneOfSubnet is the zone a subnet id names: subnet-ZONE, where ZONE is
// 1 to 60 lower-case letters, digits and hyphens.
func ZoneOfSubnet(subnet string) (string, bool) {
	zone, ok := strings.CutPrefix(subnet, "subnet-")
	if !ok || len(zone) == 0 || len(zone) > 60 {
		return "", false
	}
	for _, c := range zone {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", false
		}
	}
	return zone, true
}

// ErrFull is returned when the VPC has no subnet, or a subnet no block,
// left to give.
var ErrFull = errors.New("vpc: no address range left")

func subnetCIDR(i int) string { return fmt.Sprintf("10.%d.0.0/16", 208+i) }

func blockOf(s Subnet, i int) (cidr, gateway string) {
	p := netip.MustParsePrefix(s.CIDR).Addr().As4()
	p[2] = byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(p), 24).String(), netip.AddrFrom4([4]byte{p[0], p[1], p[2], 1}).String()
}

// EnsureSubnet returns the zone's subnet, allocating its range the first
// time.
func EnsureSubnet(ctx context.Context, cli *clientv3.Client, zone string) (Subnet, error) {
	for attempt := 0; attempt < 20; attempt++ {
		resp, err := cli.Get(ctx, state.VPCSubnetsPrefix(), clientv3.WithPrefix())
		if err != nil {
			return Subnet{}, err
		}
		used := map[int]bool{}
		for _, kv := range resp.Kvs {
			var s Subnet
			if json.Unmarshal(kv.Value, &s) != nil {
				continue
			}
			if s.Zone == zone {
				return s, nil
			}
			used[s.Index] = true
		}
		idx := -1
		for i := 0; i < maxSubnets; i++ {
			if !used[i] {
				idx = i
				break
			}
		}
		if idx < 0 {
			return Subnet{}, fmt.Errorf("%w: all %d subnets of %s are taken", ErrFull, maxSubnets, CIDR)
		}
		s := Subnet{SubnetID: SubnetID(zone), Zone: zone, CIDR: subnetCIDR(idx), Index: idx}
		b, _ := json.Marshal(s)
		k, ik := state.VPCSubnetKey(zone), state.VPCSubnetIndexKey(idx)
		tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.Compare(clientv3.CreateRevision(ik), "=", 0)).
			Then(clientv3.OpPut(k, string(b)), clientv3.OpPut(ik, zone)).Commit()
		if err != nil {
			return Subnet{}, err
		}
		if tr.Succeeded {
			return s, nil
		}
	}
	return Subnet{}, fmt.Errorf("vpc: could not allocate a subnet for zone %s: too much contention", zone)
}

// EnsureBlock returns the instance's block in its zone's subnet,
// allocating one the first time (or again if the instance moved zone).
func EnsureBlock(ctx context.Context, cli *clientv3.Client, cluster, id, zone, host string) (Block, error) {
	ik := state.VPCInstanceKey(cluster, id)
	for attempt := 0; attempt < 20; attempt++ {
		cur, err := cli.Get(ctx, ik)
		if err != nil {
			return Block{}, err
		}
		if len(cur.Kvs) == 1 {
			var b Block
			if err := json.Unmarshal(cur.Kvs[0].Value, &b); err == nil && b.Zone == zone {
				if b.HostAddress == host {
					return b, nil
				}
				b.HostAddress = host // the instance moved to another address
				val, _ := json.Marshal(b)
				tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ik), "=", cur.Kvs[0].ModRevision)).
					Then(clientv3.OpPut(ik, string(val))).Commit()
				if err != nil {
					return Block{}, err
				}
				if tr.Succeeded {
					return b, nil
				}
				continue
			}
			if err := Release(ctx, cli, cluster, id); err != nil {
				return Block{}, err
			}
			continue
		}
		s, err := EnsureSubnet(ctx, cli, zone)
		if err != nil {
			return Block{}, err
		}
		taken, err := cli.Get(ctx, state.VPCBlocksPrefix(zone), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return Block{}, err
		}
		used := map[string]bool{}
		for _, kv := range taken.Kvs {
			used[string(kv.Key)] = true
		}
		idx := -1
		for i := 0; i < maxBlocks; i++ {
			if !used[state.VPCBlockKey(zone, i)] {
				idx = i
				break
			}
		}
		if idx < 0 {
			return Block{}, fmt.Errorf("%w: all %d blocks of %s (%s) are taken", ErrFull, maxBlocks, s.SubnetID, s.CIDR)
		}
		b := Block{Cluster: cluster, InstanceID: id, SubnetID: s.SubnetID, Zone: zone, SubnetCIDR: s.CIDR, Index: idx, VPCCIDR: CIDR, HostAddress: host}
		b.CIDR, b.Gateway = blockOf(s, idx)
		val, _ := json.Marshal(b)
		bk := state.VPCBlockKey(zone, idx)
		tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(ik), "=", 0), clientv3.Compare(clientv3.CreateRevision(bk), "=", 0)).
			Then(clientv3.OpPut(ik, string(val)), clientv3.OpPut(bk, cluster+"/"+id)).Commit()
		if err != nil {
			return Block{}, err
		}
		if tr.Succeeded {
			return b, nil
		}
	}
	return Block{}, fmt.Errorf("vpc: could not allocate a block for instance %s: too much contention", id)
}

// Release frees an instance's block (it was deregistered).
func Release(ctx context.Context, cli *clientv3.Client, cluster, id string) error {
	ik := state.VPCInstanceKey(cluster, id)
	cur, err := cli.Get(ctx, ik)
	if err != nil || len(cur.Kvs) == 0 {
		return err
	}
	var b Block
	ops := []clientv3.Op{clientv3.OpDelete(ik)}
	if json.Unmarshal(cur.Kvs[0].Value, &b) == nil {
		bk := state.VPCBlockKey(b.Zone, b.Index)
		// Only the block's own claim is deleted.
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(ik), "=", cur.Kvs[0].ModRevision),
			clientv3.Compare(clientv3.Value(bk), "=", cluster+"/"+id)).Then(append(ops, clientv3.OpDelete(bk))...).
			Else(clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(ik), "=", cur.Kvs[0].ModRevision)}, ops, nil)).Commit()
		return err
	}
	_, err = cli.Delete(ctx, ik)
	return err
}

// ClusterBlocks returns the blocks of one cluster's instances.
func ClusterBlocks(ctx context.Context, cli *clientv3.Client, cluster string) ([]Block, error) {
	resp, err := cli.Get(ctx, state.VPCInstancesPrefix()+cluster+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := []Block{}
	for _, kv := range resp.Kvs {
		var b Block
		if json.Unmarshal(kv.Value, &b) == nil {
			out = append(out, b)
		}
	}
	return out, nil
}

// List returns every subnet and every block.
func List(ctx context.Context, cli *clientv3.Client) ([]Subnet, []Block, error) {
	var subnets []Subnet
	var blocks []Block
	resp, err := cli.Get(ctx, state.VPCSubnetsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range resp.Kvs {
		var s Subnet
		if json.Unmarshal(kv.Value, &s) == nil {
			subnets = append(subnets, s)
		}
	}
	resp, err = cli.Get(ctx, state.VPCInstancesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range resp.Kvs {
		var b Block
		if json.Unmarshal(kv.Value, &b) == nil {
			blocks = append(blocks, b)
		}
	}
	return subnets, blocks, nil
}

// Contains reports whether addr is a task address of the VPC.
func Contains(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && netip.MustParsePrefix(CIDR).Contains(a)
}

// DNSName is the private DNS name EC2 gives an address: ip-A-B-C-D.ec2.internal.
func DNSName(addr string) string {
	return "ip-" + strings.ReplaceAll(addr, ".", "-") + ".ec2.internal"
}
