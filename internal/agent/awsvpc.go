package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
)

// An awsvpc task gets a network namespace of its own, as on ECS: a pause
// container holds it, attached to the instance's task network (a Docker
// bridge network over the instance's block of its zone's subnet), and
// every container of the task joins it, so they share one address and
// reach each other on localhost. Ports are the task's own: any number of
// tasks with the same containerPort run on one instance.

// PauseImage is the image of pause containers, made by the agent.
const PauseImage = "berth/pause:1"

// LabelNetworkBlock marks the Docker network of an instance's block.
const LabelNetworkBlock = "com.berth.network-block"

// pauseBinary is a static x86-64 ELF program that waits for signals
// forever (pause(2) in a loop), so the image needs no registry and no
// file but itself.
func pauseBinary() ([]byte, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("awsvpc tasks need the pause program, which Berth has for amd64 only (this is %s)", runtime.GOARCH)
	}
	code := []byte{
		0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
		0x0f, 0x05, // syscall
		0xeb, 0xf7, // jmp back to mov
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))                            // ET_EXEC
	binary.Write(&b, le, uint16(0x3e))                         // x86-64
	binary.Write(&b, le, uint32(1))                            // version
	binary.Write(&b, le, uint64(base+ehsize+phsize))           // entry
	binary.Write(&b, le, uint64(ehsize))                       // program headers
	binary.Write(&b, le, uint64(0))                            // no section headers
	binary.Write(&b, le, uint32(0))                            // flags
	binary.Write(&b, le, []uint16{ehsize, phsize, 1, 0, 0, 0}) // sizes and counts
	size := uint64(ehsize + phsize + len(code))
	binary.Write(&b, le, uint32(1)) // PT_LOAD
	binary.Write(&b, le, uint32(5)) // R+X
	binary.Write(&b, le, []uint64{0, base, base, size, size, 0x1000})
	b.Write(code)
	return b.Bytes(), nil
}

// ensurePauseImage imports the pause image if the engine lacks it.
func (a *Agent) ensurePauseImage(ctx context.Context) error {
	if _, err := a.docker.ImageInspect(ctx, PauseImage); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return err
	}
	bin, err := pauseBinary()
	if err != nil {
		return err
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg})
	tw.Write(bin)
	tw.Close()
	rc, err := a.docker.ImageImport(ctx, image.ImportSource{Source: &tb, SourceName: "-"}, PauseImage,
		image.ImportOptions{Changes: []string{`CMD ["/pause"]`}})
	if err != nil {
		return fmt.Errorf("import the pause image: %w", err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("import the pause image: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("import the pause image: %s", msg.Error)
		}
	}
}

// taskNetwork returns the Docker network of the instance's block,
// creating it (and asking the server for the block) the first time.
func (a *Agent) taskNetwork(ctx context.Context) (string, *agentapi.NetworkBlock, error) {
	a.netMu.Lock()
	defer a.netMu.Unlock()
	if a.netBlock != nil {
		return a.netName, a.netBlock, nil
	}
	var b agentapi.NetworkBlock
	if err := a.api.Post(ctx, "/berth/v1/agent/network", &agentapi.NetworkRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn, HostAddress: a.hostAddress()}, &b); err != nil {
		return "", nil, fmt.Errorf("get the instance's task addresses: %w", err)
	}
	a.routesOnce.Do(func() { go a.syncRoutes(a.runCtx) })
	// Named by its range, so engines shared by several agents (or
	// clusters) never hold two networks over one range.
	name := "berth-" + strings.ReplaceAll(b.CIDR, "/", "-")
	if nw, err := a.docker.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		if len(nw.IPAM.Config) == 1 && nw.IPAM.Config[0].Subnet == b.CIDR {
			a.netName, a.netBlock = name, &b
			return name, &b, a.allowTaskTraffic(b.VPCCIDR)
		}
		// Left by an earlier cluster with another block: replace it if
		// nothing uses it.
		if len(nw.Containers) > 0 {
			return "", nil, fmt.Errorf("docker network %s is %v, not this instance's block %s, and containers use it", name, nw.IPAM.Config, b.CIDR)
		}
		if err := a.docker.NetworkRemove(ctx, name); err != nil {
			return "", nil, err
		}
	} else if !cerrdefs.IsNotFound(err) {
		return "", nil, err
	}
	// A network Berth made over the same range under another name (an
	// earlier version's) goes, if nothing uses it.
	if list, err := a.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelNetworkBlock+"="+b.CIDR))}); err == nil {
		for _, nw := range list {
			if full, err := a.docker.NetworkInspect(ctx, nw.ID, network.InspectOptions{}); err == nil && len(full.Containers) == 0 {
				a.docker.NetworkRemove(ctx, nw.ID)
			}
		}
	}
	_, err := a.docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: b.CIDR, Gateway: b.Gateway}}},
		Labels: map[string]string{LabelNetworkBlock: b.CIDR, LabelInstance: a.id, LabelCluster: a.cfg.Cluster}})
	if err != nil {
		return "", nil, fmt.Errorf("create the task network %s (%s): %w", name, b.CIDR, err)
	}
	a.log.Info("task network ready", "network", name, "subnet", b.SubnetID, "block", b.CIDR)
	a.netName, a.netBlock = name, &b
	return name, &b, a.allowTaskTraffic(b.VPCCIDR)
}

// allowTaskTraffic lets task addresses reach each other across the
// instance's bridges with their own source addresses: Docker isolates
// its bridge networks from one another and masquerades what leaves one.
// Both rules go first in their chains (DOCKER-USER is the one Docker
// leaves to its users).
func (a *Agent) allowTaskTraffic(cidr string) error {
	if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
		return fmt.Errorf("the server's task network range %q is not an IPv4 prefix", cidr)
	}
	rules := [][]string{
		{"-t", "filter", "DOCKER-USER", "-s", cidr, "-d", cidr, "-j", "ACCEPT"},
		{"-t", "nat", "POSTROUTING", "-s", cidr, "-d", cidr, "-j", "RETURN"},
	}
	for _, r := range rules {
		table, chain, spec := r[:2], r[2], r[3:]
		// Docker puts each new network's rules first: ours must go
		// before them again.
		list, err := exec.Command("iptables", append(append([]string{}, table...), "-S", chain)...).Output()
		if err == nil {
			lines := strings.Split(strings.TrimSpace(string(list)), "\n")
			if len(lines) > 1 && lines[1] == "-A "+chain+" "+strings.Join(spec, " ") {
				continue
			}
		}
		del := append(append(append([]string{}, table...), "-D", chain), spec...)
		for exec.Command("iptables", del...).Run() == nil {
		}
		insert := append(append(append([]string{}, table...), "-I", chain, "1"), spec...)
		if out, err := exec.Command("iptables", insert...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(insert, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// A pause container takes a few hundred milliseconds to start on a
// bridge network (its namespace, veth pair and address), more than the
// rest of a task's start. The agent keeps warmPauses of them started
// ahead, as ECS keeps network interfaces PRECREATED: a task takes one,
// renames it after itself, and the pool refills in the background.
// Pool containers carry LabelPausePool and no task label; a taken one is
// known by its name, ecs-FAMILY-REV-internalecspause-TASKID.

// LabelPausePool marks the agent's pause containers.
const LabelPausePool = "com.berth.pause-pool"

const (
	warmPauses      = 2
	warmPausePrefix = "berth-pause-warm-"
	pauseNamePart   = "-internalecspause-"
)

type warmPause struct{ id, ip, mac string }

type pausePool struct {
	mu      sync.Mutex
	ready   []warmPause
	filling bool
}

// pauseTaskID is the id of the task a pause container (by name) belongs
// to, or "" for one still in the pool.
func pauseTaskID(name string) string {
	name = strings.TrimPrefix(name, "/")
	if i := strings.LastIndex(name, pauseNamePart); i >= 0 && strings.HasPrefix(name, "ecs-") {
		return name[i+len(pauseNamePart):]
	}
	return ""
}

// newPause starts a pause container on the task network.
func (a *Agent) newPause(ctx context.Context) (warmPause, error) {
	labels := map[string]string{LabelPausePool: "1", LabelCluster: a.cfg.Cluster, LabelInstance: a.id}
	return a.startNamespace(ctx, warmPausePrefix+randomHex(8), labels)
}

// startNamespace starts a pause container named cname on the task
// network: a network namespace with an address of the instance's block.
func (a *Agent) startNamespace(ctx context.Context, cname string, labels map[string]string) (warmPause, error) {
	if err := a.ensurePauseImage(ctx); err != nil {
		return warmPause{}, err
	}
	name, block, err := a.taskNetwork(ctx)
	if err != nil {
		return warmPause{}, err
	}
	resp, err := a.docker.ContainerCreate(ctx, &container.Config{Image: PauseImage, Labels: labels},
		&container.HostConfig{NetworkMode: container.NetworkMode(name), RestartPolicy: restartPolicy(labels)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: {}}}, nil, cname)
	if err != nil {
		return warmPause{}, fmt.Errorf("create a network namespace: %w", err)
	}
	fail := func(err error) (warmPause, error) {
		a.docker.ContainerRemove(context.WithoutCancel(ctx), resp.ID, container.RemoveOptions{Force: true})
		return warmPause{}, err
	}
	if err := a.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return fail(fmt.Errorf("start a network namespace: %w", err))
	}
	info, err := a.docker.ContainerInspect(ctx, resp.ID)
	if err != nil {
		return fail(err)
	}
	ep := info.NetworkSettings.Networks[name]
	if ep == nil || ep.IPAddress == "" {
		return fail(fmt.Errorf("no address left in %s", block.CIDR))
	}
	return warmPause{id: resp.ID, ip: ep.IPAddress, mac: ep.MacAddress}, nil
}

// takePause gives a task a running pause container named name: a warm
// one when the pool has one, else a new one.
func (a *Agent) takePause(ctx context.Context, name string) (warmPause, error) {
	var p warmPause
	for p.id == "" {
		a.pauses.mu.Lock()
		if len(a.pauses.ready) == 0 {
			a.pauses.mu.Unlock()
			var err error
			if p, err = a.newPause(ctx); err != nil {
				return warmPause{}, err
			}
			break
		}
		p = a.pauses.ready[0]
		a.pauses.ready = a.pauses.ready[1:]
		a.pauses.mu.Unlock()
		if info, err := a.docker.ContainerInspect(ctx, p.id); err != nil || !info.State.Running {
			a.docker.ContainerRemove(ctx, p.id, container.RemoveOptions{Force: true})
			p = warmPause{}
		}
	}
	if err := a.docker.ContainerRename(ctx, p.id, name); err != nil {
		a.docker.ContainerRemove(context.WithoutCancel(ctx), p.id, container.RemoveOptions{Force: true})
		return warmPause{}, fmt.Errorf("name the task's network namespace: %w", err)
	}
	go a.fillPauses(ctx)
	return p, nil
}

// fillPauses starts pause containers until the pool holds warmPauses.
func (a *Agent) fillPauses(ctx context.Context) {
	a.pauses.mu.Lock()
	if a.pauses.filling {
		a.pauses.mu.Unlock()
		return
	}
	a.pauses.filling = true
	a.pauses.mu.Unlock()
	defer func() {
		a.pauses.mu.Lock()
		a.pauses.filling = false
		a.pauses.mu.Unlock()
	}()
	for {
		a.pauses.mu.Lock()
		n := len(a.pauses.ready)
		a.pauses.mu.Unlock()
		if n >= warmPauses || ctx.Err() != nil {
			return
		}
		p, err := a.newPause(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("warm a network namespace for awsvpc tasks", "err", err)
			}
			return
		}
		a.pauses.mu.Lock()
		a.pauses.ready = append(a.pauses.ready, p)
		a.pauses.mu.Unlock()
	}
}

// startPause gives the task its network namespace and records the
// address it got.
func (r *runner) startPause(ctx context.Context) error {
	att := r.eni()
	if att == "" {
		return &taskFailure{code: "TaskFailedToStart", reason: "ResourceInitializationError: the task has no network interface attachment"}
	}
	p, err := r.a.takePause(ctx, r.containerName("internalecspause"))
	if err != nil {
		return &taskFailure{code: "TaskFailedToStart", reason: "ResourceInitializationError: " + err.Error()}
	}
	r.pause = p.id
	r.network = &agentapi.TaskNetwork{AttachmentID: att, PrivateIPv4Address: p.ip, MACAddress: p.mac}
	r.a.log.Debug("task network namespace ready", "task", r.arn, "address", p.ip)
	return nil
}

// eni is the id of the task's network interface attachment.
func (r *runner) eni() string {
	for _, at := range r.task.Attachments {
		if spec.Val(at.Type) == "ElasticNetworkInterface" {
			return spec.Val(at.Id)
		}
	}
	return ""
}

func (r *runner) awsvpc() bool { return spec.Val(r.def.NetworkMode) == "awsvpc" }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// restartPolicy: an SMB endpoint's namespace comes back with the engine;
// a task's does not (its task is stopped).
func restartPolicy(labels map[string]string) container.RestartPolicy {
	if labels[LabelSMB] != "" {
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	}
	return container.RestartPolicy{}
}
