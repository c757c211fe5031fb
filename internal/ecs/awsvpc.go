package ecs

import (
	"context"
	"encoding/hex"
	"net"
	"strings"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/vpc"
)

// Fargate's capacity providers, always associated with every cluster as
// far as Berth is concerned: agents offer their capacity.
const (
	ProviderFargate     = "FARGATE"
	ProviderFargateSpot = "FARGATE_SPOT"
	// PlatformVersion is the Fargate platform version Berth's tasks report.
	PlatformVersion = "1.4.0"
)

// taskNetwork is a validated awsvpcConfiguration.
type taskNetwork struct {
	subnets map[string]string // zone -> subnet id
	config  *spec.AwsVpcConfiguration
}

// prepareNetwork checks a launch's network configuration against its
// definition's network mode, as ECS does, and returns the zones its
// subnets allow.
func prepareNetwork(def *spec.TaskDefinition, in *launch.Input, launchType string) (*taskNetwork, *scheduler.ZoneRequirement, error) {
	nc := in.Network
	if spec.Val(def.NetworkMode) != "awsvpc" {
		if nc != nil && nc.AwsvpcConfiguration != nil {
			return nil, nil, spec.InvalidParam("Network Configuration is not valid for the given networkMode of this task definition.")
		}
		return nil, nil, nil
	}
	if nc == nil || nc.AwsvpcConfiguration == nil {
		return nil, nil, spec.InvalidParam("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	if err := spec.ValidateNetworkConfiguration(nc); err != nil {
		return nil, nil, err
	}
	c := nc.AwsvpcConfiguration
	if len(c.Subnets) == 0 {
		return nil, nil, spec.InvalidParam("subnets can not be empty.")
	}
	n := &taskNetwork{subnets: map[string]string{}, config: c}
	if spec.Val(c.AssignPublicIp) == "ENABLED" && launchType != spec.Fargate {
		return nil, nil, spec.InvalidParam("Assign public IP is not supported for this launch type.")
	}
	zr := &scheduler.ZoneRequirement{Zones: map[string]bool{}, Why: "the task's subnets"}
	for _, s := range c.Subnets {
		zone, ok := vpc.ZoneOfSubnet(s)
		if !ok {
			return nil, nil, spec.InvalidParam("Error retrieving subnet information for [%s]: The subnet ID '%s' does not exist (Berth's subnets are named subnet-ZONE).", s, s)
		}
		n.subnets[zone] = s
		zr.Zones[zone] = true
	}
	for _, g := range c.SecurityGroups {
		if !strings.HasPrefix(g, "sg-") || len(g) < 4 {
			return nil, nil, spec.InvalidParam("Error retrieving security group information for [%s]: The security group '%s' does not exist.", g, g)
		}
	}
	return n, zr, nil
}

// resolveCapacity decides a launch's launch type and, for a capacity
// provider strategy (given or the cluster's default), the provider of
// each of its tasks, as ECS spreads them: each provider's base first,
// then by weight.
func resolveCapacity(cl *state.ClusterRecord, in *launch.Input) (string, []string, error) {
	lt := spec.Val(in.LaunchType)
	strategy := in.CapacityProviderStrategy
	if lt != "" && len(strategy) > 0 {
		return "", nil, spec.InvalidParam("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.")
	}
	if lt == "" && len(strategy) == 0 {
		strategy = cl.DefaultCapacityProviderStrategy
	}
	if len(strategy) == 0 {
		if lt == "" {
			lt = spec.EC2
		}
		if lt != spec.EC2 && lt != spec.Fargate && lt != spec.External {
			return "", nil, spec.InvalidParam("Invalid launchType '%s'. Valid values: EC2, FARGATE, EXTERNAL.", lt)
		}
		return lt, nil, nil
	}
	if err := validateStrategy(strategy, cl); err != nil {
		return "", nil, err
	}
	return spec.Fargate, spreadProviders(strategy, max(in.Count, 1)), nil
}

// validateStrategy checks a capacity provider strategy as ECS does: at
// most 20 items, each provider once, weights 0–1,000, bases 0–100000 on
// one item only, some weight above zero; Berth's providers are FARGATE
// and FARGATE_SPOT.
func validateStrategy(strategy []spec.CapacityProviderStrategyItem, cl *state.ClusterRecord) error {
	if len(strategy) > 20 {
		return spec.InvalidParam("capacityProviderStrategy can have at most 20 items.")
	}
	seen, bases, weight := map[string]bool{}, 0, int32(0)
	for _, it := range strategy {
		p := spec.Val(it.CapacityProvider)
		if p == "" {
			return spec.InvalidParam("capacityProvider is required in a capacity provider strategy item.")
		}
		if p != ProviderFargate && p != ProviderFargateSpot {
			if cl != nil && !containsStr(cl.CapacityProviders, p) {
				return spec.InvalidParam("The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.")
			}
			return spec.InvalidParam("The capacity provider '%s' is not supported: Berth offers FARGATE and FARGATE_SPOT.", p)
		}
		if seen[p] {
			return spec.InvalidParam("The specified capacity provider strategy cannot contain duplicate capacity providers.")
		}
		seen[p] = true
		if w := spec.Val(it.Weight); w < 0 || w > 1000 {
			return spec.InvalidParam("The weight of a capacity provider must be between 0 and 1000.")
		}
		if b := spec.Val(it.Base); b < 0 || b > 100000 {
			return spec.InvalidParam("The base of a capacity provider must be between 0 and 100000.")
		} else if b > 0 {
			bases++
		}
		weight += spec.Val(it.Weight)
	}
	if bases > 1 {
		return spec.InvalidParam("Only one capacity provider in a strategy can have a base defined.")
	}
	if weight == 0 && len(strategy) > 1 {
		return spec.InvalidParam("At least one capacity provider in a strategy must have a weight greater than zero.")
	}
	return nil
}

// spreadProviders gives each of n tasks a provider: bases first, then in
// proportion to the weights.
func spreadProviders(strategy []spec.CapacityProviderStrategyItem, n int) []string {
	out := make([]string, 0, n)
	for _, it := range strategy {
		for b := int32(0); b < spec.Val(it.Base) && len(out) < n; b++ {
			out = append(out, spec.Val(it.CapacityProvider))
		}
	}
	given := map[string]int{}
	var total int32
	for _, it := range strategy {
		total += spec.Val(it.Weight)
	}
	for len(out) < n {
		if total == 0 {
			out = append(out, spec.Val(strategy[0].CapacityProvider))
			continue
		}
		// The provider furthest below its share takes the next task.
		best, bestGap := "", -1.0
		placed := 0.0
		for _, k := range given {
			placed += float64(k)
		}
		for _, it := range strategy {
			w := spec.Val(it.Weight)
			if w == 0 {
				continue
			}
			p := spec.Val(it.CapacityProvider)
			gap := (placed+1)*float64(w)/float64(total) - float64(given[p])
			if gap > bestGap {
				best, bestGap = p, gap
			}
		}
		given[best]++
		out = append(out, best)
	}
	return out
}

// eniAttachment is a task's network interface as DescribeTasks shows it
// before the agent has brought it up.
func eniAttachment(subnet string) spec.Attachment {
	return spec.Attachment{Id: spec.Str(newUUID()), Type: spec.Str("ElasticNetworkInterface"), Status: spec.Str("PRECREATED"),
		Details: []spec.KeyValuePair{
			{Name: spec.Str("subnetId"), Value: spec.Str(subnet)},
			{Name: spec.Str("networkInterfaceId"), Value: spec.Str("eni-" + newID()[:17])},
		}}
}

// newUUID is a random (version 4) UUID, the form of ECS attachment ids.
func newUUID() string {
	b, _ := hex.DecodeString(newID())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// checkClusterProviders validates a cluster's capacity providers and
// default strategy: Berth's providers are FARGATE and FARGATE_SPOT, and
// the strategy names only providers of the list.
func checkClusterProviders(providers []string, strategy []spec.CapacityProviderStrategyItem) error {
	seen := map[string]bool{}
	for _, p := range providers {
		if p != ProviderFargate && p != ProviderFargateSpot {
			return spec.InvalidParam("The specified capacity provider '%s' does not exist: Berth offers FARGATE and FARGATE_SPOT.", p)
		}
		if seen[p] {
			return spec.InvalidParam("The specified capacity providers cannot contain duplicates.")
		}
		seen[p] = true
	}
	for _, it := range strategy {
		if !seen[spec.Val(it.CapacityProvider)] {
			return spec.InvalidParam("The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.")
		}
	}
	if len(strategy) > 0 {
		return validateStrategy(strategy, nil)
	}
	return nil
}

// PutClusterCapacityProviders sets a cluster's capacity providers and its
// default strategy.
func (a *API) PutClusterCapacityProviders(ctx context.Context, r *spec.PutClusterCapacityProvidersRequest) (*spec.PutClusterCapacityProvidersResponse, error) {
	if spec.Val(r.Cluster) == "" {
		return nil, spec.InvalidParam("cluster is required.")
	}
	if r.CapacityProviders == nil || r.DefaultCapacityProviderStrategy == nil {
		return nil, spec.InvalidParam("capacityProviders and defaultCapacityProviderStrategy are required.")
	}
	if err := checkClusterProviders(r.CapacityProviders, r.DefaultCapacityProviderStrategy); err != nil {
		return nil, err
	}
	c, err := a.updateCluster(ctx, r.Cluster, func(c *state.ClusterRecord) {
		c.CapacityProviders = r.CapacityProviders
		c.DefaultCapacityProviderStrategy = r.DefaultCapacityProviderStrategy
	})
	if err != nil {
		return nil, err
	}
	return &spec.PutClusterCapacityProvidersResponse{Cluster: c}, nil
}

// DescribeCapacityProviders describes Berth's two providers, FARGATE and
// FARGATE_SPOT, which every cluster may use.
func (a *API) DescribeCapacityProviders(ctx context.Context, r *spec.DescribeCapacityProvidersRequest) (*spec.DescribeCapacityProvidersResponse, error) {
	out := &spec.DescribeCapacityProvidersResponse{CapacityProviders: []spec.CapacityProvider{}, Failures: []spec.Failure{}}
	names := r.CapacityProviders
	if len(names) == 0 {
		names = []string{ProviderFargate, ProviderFargateSpot}
	}
	for _, n := range names {
		p := n[strings.LastIndex(n, "/")+1:]
		if p != ProviderFargate && p != ProviderFargateSpot {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(n), Reason: spec.Str("MISSING")})
			continue
		}
		cp := spec.CapacityProvider{CapacityProviderArn: spec.Str(a.arn("capacity-provider/" + p)), Name: spec.Str(p),
			Status: spec.Str("ACTIVE"), Type: spec.Str(p)}
		if containsStr(r.Include, "TAGS") {
			cp.Tags = []spec.Tag{}
		}
		out.CapacityProviders = append(out.CapacityProviders, cp)
	}
	return out, nil
}

// attachNetwork records the address an agent gave an awsvpc task: the
// ENI attachment's details and each container's network interface.
func attachNetwork(t *state.TaskRecord, n *agentapi.TaskNetwork) (bool, error) {
	if !vpc.Contains(n.PrivateIPv4Address) {
		return false, spec.InvalidParam("Invalid task address '%.64s': not in %s.", n.PrivateIPv4Address, vpc.CIDR)
	}
	if _, err := net.ParseMAC(n.MACAddress); err != nil {
		return false, spec.InvalidParam("Invalid MAC address '%.64s'.", n.MACAddress)
	}
	for i := range t.Attachments {
		at := &t.Attachments[i]
		if spec.Val(at.Type) != "ElasticNetworkInterface" || spec.Val(at.Id) != n.AttachmentID {
			continue
		}
		if spec.Val(at.Status) != "PRECREATED" {
			return false, nil
		}
		at.Status = spec.Str("ATTACHED")
		at.Details = append(at.Details,
			spec.KeyValuePair{Name: spec.Str("macAddress"), Value: spec.Str(n.MACAddress)},
			spec.KeyValuePair{Name: spec.Str("privateDnsName"), Value: spec.Str(vpc.DNSName(n.PrivateIPv4Address))},
			spec.KeyValuePair{Name: spec.Str("privateIPv4Address"), Value: spec.Str(n.PrivateIPv4Address)})
		for j := range t.Containers {
			t.Containers[j].NetworkInterfaces = []spec.NetworkInterface{{AttachmentId: at.Id, PrivateIpv4Address: spec.Str(n.PrivateIPv4Address)}}
		}
		return true, nil
	}
	return false, spec.InvalidParam("The task has no network interface attachment '%.64s'.", n.AttachmentID)
}

// fargatePlacement refuses placement a user asks for Fargate tasks, as
// ECS does: Fargate chooses where they run.
func fargatePlacement(ls *launchSpec, constraints []spec.PlacementConstraint, strategies []spec.PlacementStrategy) error {
	if ls.launchType == spec.Fargate && (len(constraints) > 0 || len(strategies) > 0) {
		return spec.InvalidParam("Task placement constraints and strategies are not supported for tasks using the Fargate launch type.")
	}
	return nil
}
