package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Between hosts, a task address is reached through the host of its
// instance's block. The agent routes the blocks of its cluster's other
// instances to their hosts when those hosts are on a network this host
// reaches directly (one link, as hosts of one subnet are); beyond that,
// routing is the network's (a router or a VPC route table with the same
// routes). Blocks of instances on this host need no route.

// RouteInterval is how often an agent with a task network reconciles its
// routes to the other instances' blocks.
var RouteInterval = 5 * time.Second

// hostAddress is the address other hosts reach this one at: the
// configured one, or the one this host reaches its server from.
func (a *Agent) hostAddress() string {
	if a.cfg.HostAddress != "" {
		return a.cfg.HostAddress
	}
	u, err := url.Parse(a.api.Server())
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)) // sends nothing
	if err != nil {
		return ""
	}
	defer c.Close()
	ip, ok := netip.AddrFromSlice(c.LocalAddr().(*net.UDPAddr).IP)
	if !ok {
		return ""
	}
	return ip.Unmap().String()
}

// syncRoutes keeps routes to the other instances' blocks, and the
// rules that let task traffic through, until ctx ends.
func (a *Agent) syncRoutes(ctx context.Context) {
	installed := map[string]string{} // block -> host it is routed through
	for {
		var resp agentapi.RoutesResponse
		if err := a.api.Post(ctx, "/berth/v1/agent/routes", &agentapi.NetworkRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn}, &resp); err == nil {
			a.reconcileRoutes(resp.Blocks, installed)
		}
		a.netMu.Lock()
		b := a.netBlock
		a.netMu.Unlock()
		if b != nil {
			// Networks made since (by Docker, for anyone) put their rules first.
			if err := a.allowTaskTraffic(b.VPCCIDR); err != nil {
				a.log.Warn("task traffic rules", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(RouteInterval):
		}
	}
}

func (a *Agent) reconcileRoutes(blocks []agentapi.NetworkBlock, installed map[string]string) {
	want := map[string]string{}
	for _, b := range blocks {
		if b.InstanceID == a.id || b.HostAddress == "" {
			continue
		}
		if _, err := netip.ParsePrefix(b.CIDR); err != nil {
			continue
		}
		if onLink(b.HostAddress) {
			want[b.CIDR] = b.HostAddress
		}
	}
	for cidr, via := range want {
		cur, _ := exec.Command("ip", "-o", "route", "show", "exact", cidr).Output()
		line := strings.TrimSpace(string(cur))
		if strings.Contains(line, " via "+via+" ") {
			installed[cidr] = via
			continue
		}
		if line != "" && !strings.Contains(line, " via ") {
			// This host has a network of its own over that block: one a
			// Docker engine kept from an earlier cluster (or another one
			// on the engine). An empty one of Berth's goes; one in use
			// stays, and the block is not routed.
			if !a.removeStaleNetwork(cidr) {
				continue
			}
		}
		if out, err := exec.Command("ip", "route", "replace", cidr, "via", via).CombinedOutput(); err != nil {
			a.log.Warn("route an instance's task addresses", "block", cidr, "via", via, "err", fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out))))
			continue
		}
		a.log.Info("routed an instance's task addresses", "block", cidr, "via", via)
		installed[cidr] = via
	}
	for cidr, via := range installed {
		if want[cidr] != via {
			exec.Command("ip", "route", "del", cidr, "via", via).Run()
			delete(installed, cidr)
		}
	}
}

// onLink reports whether addr is another host on a network this host is
// on: the kernel routes to it directly, through an interface other than
// loopback.
func onLink(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.IsLoopback() || !ip.Is4() {
		return false
	}
	out, err := exec.Command("ip", "-o", "route", "get", ip.String()).Output()
	if err != nil {
		return false
	}
	f := strings.Fields(string(out))
	if len(f) == 0 || f[0] == "local" {
		return false
	}
	for i, w := range f {
		if w == "via" || (w == "dev" && i+1 < len(f) && f[i+1] == "lo") {
			return false
		}
	}
	return true
}

// removeStaleNetwork removes an empty Docker network of Berth's over a
// block another instance now holds.
// It reports whether none is left.
func (a *Agent) removeStaleNetwork(cidr string) bool {
	ctx := a.runCtx
	list, err := a.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelNetworkBlock+"="+cidr))})
	if err != nil || len(list) == 0 {
		a.log.Warn("a block of another instance is a network of this host: not routed", "block", cidr)
		return false
	}
	for _, nw := range list {
		full, err := a.docker.NetworkInspect(ctx, nw.ID, network.InspectOptions{})
		if err != nil || len(full.Containers) > 0 {
			a.log.Warn("a block of another instance is a network of this host in use: not routed", "block", cidr, "network", nw.Name)
			return false
		}
		if err := a.docker.NetworkRemove(ctx, nw.ID); err != nil {
			return false
		}
		a.log.Info("removed a stale task network: its block is another instance's now", "network", nw.Name, "block", cidr)
	}
	return true
}
