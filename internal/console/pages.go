package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

var funcs = template.FuncMap{
	"val":   func(p *string) string { return spec.Val(p) },
	"short": shortID,
	// abbr shortens an id as docker ps does; the page keeps the whole id
	// in the link and its title.
	"abbr": func(id string) string {
		if len(id) > 12 {
			return id[:12]
		}
		return id
	},
	"ago": func(ts *spec.Timestamp) string {
		if ts == nil {
			return ""
		}
		return time.Since(ts.Time).Round(time.Second).String()
	},
	"lower": strings.ToLower,
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"exit": func(p *int32) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(int(*p))
	},
	"path": url.PathEscape,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}

// shortID is the last part of an ARN.
func shortID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

func ptr(s string) *string { return &s }

// clusterSummary is one row of the clusters page.
type clusterSummary struct {
	Name                                  string
	Instances, Running, Pending, Services int32
	Zones                                 []string
	Status                                string
}

func (c *Console) clusters(r *http.Request) (*view, error) {
	ctx := r.Context()
	l, err := c.ECS.ListClusters(ctx, &spec.ListClustersRequest{})
	if err != nil {
		return nil, err
	}
	var out []clusterSummary
	if len(l.ClusterArns) > 0 {
		d, err := c.ECS.DescribeClusters(ctx, &spec.DescribeClustersRequest{Clusters: l.ClusterArns})
		if err != nil {
			return nil, err
		}
		for _, cl := range d.Clusters {
			s := clusterSummary{Name: spec.Val(cl.ClusterName), Instances: spec.Val(cl.RegisteredContainerInstancesCount),
				Running: spec.Val(cl.RunningTasksCount), Pending: spec.Val(cl.PendingTasksCount), Services: spec.Val(cl.ActiveServicesCount), Status: spec.Val(cl.Status)}
			insts, _ := c.instances(r, s.Name)
			for _, z := range insts {
				s.Zones = append(s.Zones, z.Zone)
			}
			out = append(out, s)
		}
	}
	return &view{Page: "clusters", Title: "Clusters", Data: out}, nil
}

// zoneView groups a cluster's instances by zone.
type zoneView struct {
	Zone      string
	Instances []instanceView
}

type instanceView struct {
	ID, Status, Zone, Host, Capacity string
	Connected                        bool
	CPU, CPUFree, Mem, MemFree       int32
	Running                          int32
	Attributes                       []string
}

func (c *Console) instances(r *http.Request, cluster string) ([]zoneView, error) {
	ctx := r.Context()
	l, err := c.ECS.ListContainerInstances(ctx, &spec.ListContainerInstancesRequest{Cluster: &cluster})
	if err != nil || len(l.ContainerInstanceArns) == 0 {
		return nil, err
	}
	d, err := c.ECS.DescribeContainerInstances(ctx, &spec.DescribeContainerInstancesRequest{Cluster: &cluster, ContainerInstances: l.ContainerInstanceArns, Include: []string{"TAGS"}})
	if err != nil {
		return nil, err
	}
	byZone := map[string][]instanceView{}
	for _, ci := range d.ContainerInstances {
		iv := instanceView{ID: shortID(spec.Val(ci.ContainerInstanceArn)), Status: spec.Val(ci.Status), Connected: spec.Val(ci.AgentConnected),
			Running: spec.Val(ci.RunningTasksCount), Capacity: "EC2 FARGATE"}
		for _, res := range ci.RegisteredResources {
			switch spec.Val(res.Name) {
			case "CPU":
				iv.CPU = spec.Val(res.IntegerValue)
			case "MEMORY":
				iv.Mem = spec.Val(res.IntegerValue)
			}
		}
		for _, res := range ci.RemainingResources {
			switch spec.Val(res.Name) {
			case "CPU":
				iv.CPUFree = spec.Val(res.IntegerValue)
			case "MEMORY":
				iv.MemFree = spec.Val(res.IntegerValue)
			}
		}
		for _, at := range ci.Attributes {
			n := spec.Val(at.Name)
			switch {
			case n == "ecs.availability-zone":
				iv.Zone = spec.Val(at.Value)
			case n == "berth.capacity":
				iv.Capacity = spec.Val(at.Value)
			case !strings.HasPrefix(n, "com.amazonaws.ecs.capability") && !strings.HasPrefix(n, "ecs.capability"):
				if v := spec.Val(at.Value); v != "" {
					n += "=" + v
				}
				iv.Attributes = append(iv.Attributes, n)
			}
		}
		for _, t := range ci.Tags {
			if spec.Val(t.Key) == "berth:host" {
				iv.Host = spec.Val(t.Value)
			}
		}
		byZone[iv.Zone] = append(byZone[iv.Zone], iv)
	}
	var out []zoneView
	for z, is := range byZone {
		sort.Slice(is, func(i, j int) bool { return is[i].ID < is[j].ID })
		out = append(out, zoneView{Zone: z, Instances: is})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Zone < out[j].Zone })
	return out, nil
}

// taskView is a task with where its data lives.
type taskView struct {
	ID, Definition, Status, Desired, Health, Zone, Instance, Launch, Address string
	StoppedReason, StopCode                                                  string
	Started                                                                  *spec.Timestamp
	Containers                                                               []spec.Container
	Data                                                                     []string
	Group                                                                    string
	// Slot is a stateful service task's slot, whose data follows it.
	Slot string
}

func (c *Console) tasks(r *http.Request, cluster string, in *spec.ListTasksRequest) ([]taskView, error) {
	ctx := r.Context()
	in.Cluster = &cluster
	var arns []string
	for _, desired := range []string{"RUNNING", "STOPPED"} {
		in.DesiredStatus = ptr(desired)
		in.MaxResults = ptrI32(100)
		l, err := c.ECS.ListTasks(ctx, in)
		if err != nil {
			return nil, err
		}
		arns = append(arns, l.TaskArns...)
	}
	var out []taskView
	defs := map[string]*spec.TaskDefinition{}
	for len(arns) > 0 {
		n := min(len(arns), 100)
		d, err := c.ECS.DescribeTasks(ctx, &spec.DescribeTasksRequest{Cluster: &cluster, Tasks: arns[:n], Include: []string{"TAGS"}})
		if err != nil {
			return nil, err
		}
		arns = arns[n:]
		for _, t := range d.Tasks {
			out = append(out, c.taskOf(r, t, defs))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Status == "STOPPED") != (out[j].Status == "STOPPED") {
			return out[j].Status == "STOPPED"
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func ptrI32(n int32) *int32 { return &n }

func (c *Console) taskOf(r *http.Request, t spec.Task, defs map[string]*spec.TaskDefinition) taskView {
	tv := taskView{ID: shortID(spec.Val(t.TaskArn)), Definition: shortID(spec.Val(t.TaskDefinitionArn)), Status: spec.Val(t.LastStatus),
		Desired: spec.Val(t.DesiredStatus), Health: spec.Val(t.HealthStatus), Zone: spec.Val(t.AvailabilityZone),
		Instance: shortID(spec.Val(t.ContainerInstanceArn)), Launch: spec.Val(t.LaunchType), StoppedReason: spec.Val(t.StoppedReason),
		StopCode: spec.Val(t.StopCode), Started: t.StartedAt, Containers: t.Containers, Group: spec.Val(t.Group)}
	for _, a := range t.Attachments {
		for _, d := range a.Details {
			if spec.Val(d.Name) == "privateIPv4Address" {
				tv.Address = spec.Val(d.Value)
			}
		}
	}
	for _, tg := range t.Tags {
		if spec.Val(tg.Key) == service.SlotTag {
			tv.Slot = spec.Val(tg.Value)
		}
	}
	arn := spec.Val(t.TaskDefinitionArn)
	def, ok := defs[arn]
	if !ok {
		if d, err := c.ECS.DescribeTaskDefinition(r.Context(), &spec.DescribeTaskDefinitionRequest{TaskDefinition: &arn}); err == nil {
			def = d.TaskDefinition
		}
		defs[arn] = def
	}
	tv.Data = whereDataLives(t, def)
	return tv
}

// whereDataLives says, for each volume of a task, where its data is.
func whereDataLives(t spec.Task, def *spec.TaskDefinition) []string {
	if def == nil {
		return nil
	}
	host := "instance " + shortID(spec.Val(t.ContainerInstanceArn))
	if t.ContainerInstanceArn == nil {
		host = "the task's host in " + spec.Val(t.AvailabilityZone)
	}
	var out []string
	for _, v := range def.Volumes {
		name := spec.Val(v.Name)
		switch {
		case spec.Val(v.ConfiguredAtLaunch):
			where := "block volume (configured at launch)"
			for _, a := range t.Attachments {
				if spec.Val(a.Type) != "AmazonElasticBlockStorage" {
					continue
				}
				for _, d := range a.Details {
					if spec.Val(d.Name) == "volumeId" {
						where = "block volume " + spec.Val(d.Value) + " in " + spec.Val(t.AvailabilityZone)
					}
				}
			}
			out = append(out, name+": "+where)
		case v.EfsVolumeConfiguration != nil:
			e := v.EfsVolumeConfiguration
			where := "file system " + spec.Val(e.FileSystemId)
			if ap := e.AuthorizationConfig; ap != nil && ap.AccessPointId != nil {
				where += " through access point " + spec.Val(ap.AccessPointId)
			} else if d := spec.Val(e.RootDirectory); d != "" && d != "/" {
				where += " at " + d
			}
			out = append(out, name+": "+where+" (every zone with a mount target)")
		case v.Host != nil && spec.Val(v.Host.SourcePath) != "":
			out = append(out, name+": host path "+spec.Val(v.Host.SourcePath)+" on "+host)
		case v.DockerVolumeConfiguration != nil && spec.Val(v.DockerVolumeConfiguration.Scope) == "shared":
			out = append(out, name+": Docker volume "+name+" on "+host)
		default:
			out = append(out, name+": task volume on "+host+" (removed with the task)")
		}
	}
	return out
}

type clusterPage struct {
	Name     string
	Zones    []zoneView
	Tasks    []taskView
	Services []serviceRow
}

type serviceRow struct {
	Name, Status, Definition, Launch string
	Desired, Running, Pending        int32
}

func (c *Console) cluster(r *http.Request) (*view, error) {
	name := r.PathValue("cluster")
	zones, err := c.instances(r, name)
	if err != nil {
		return nil, err
	}
	tasks, err := c.tasks(r, name, &spec.ListTasksRequest{})
	if err != nil {
		return nil, err
	}
	p := &clusterPage{Name: name, Zones: zones, Tasks: tasks}
	l, err := c.ECS.ListServices(r.Context(), &spec.ListServicesRequest{Cluster: &name, MaxResults: ptrI32(100)})
	if err != nil {
		return nil, err
	}
	for len(l.ServiceArns) > 0 {
		n := min(len(l.ServiceArns), 10)
		d, err := c.ECS.DescribeServices(r.Context(), &spec.DescribeServicesRequest{Cluster: &name, Services: l.ServiceArns[:n]})
		if err != nil {
			return nil, err
		}
		l.ServiceArns = l.ServiceArns[n:]
		for _, s := range d.Services {
			launch := spec.Val(s.LaunchType)
			if launch == "" && len(s.CapacityProviderStrategy) > 0 {
				launch = spec.Val(s.CapacityProviderStrategy[0].CapacityProvider)
			}
			p.Services = append(p.Services, serviceRow{Name: spec.Val(s.ServiceName), Status: spec.Val(s.Status), Definition: shortID(spec.Val(s.TaskDefinition)),
				Launch: launch, Desired: spec.Val(s.DesiredCount), Running: spec.Val(s.RunningCount), Pending: spec.Val(s.PendingCount)})
		}
	}
	return &view{Page: "cluster", Title: "Cluster " + name, Data: p}, nil
}

type taskPage struct {
	Cluster string
	Task    taskView
}

func (c *Console) taskByID(r *http.Request) (string, taskView, error) {
	cluster, id := r.PathValue("cluster"), r.PathValue("task")
	d, err := c.ECS.DescribeTasks(r.Context(), &spec.DescribeTasksRequest{Cluster: &cluster, Tasks: []string{id}, Include: []string{"TAGS"}})
	if err != nil {
		return "", taskView{}, err
	}
	if len(d.Tasks) != 1 {
		return "", taskView{}, fmt.Errorf("task %s not found in cluster %s", id, cluster)
	}
	return cluster, c.taskOf(r, d.Tasks[0], map[string]*spec.TaskDefinition{}), nil
}

func (c *Console) task(r *http.Request) (*view, error) {
	cluster, tv, err := c.taskByID(r)
	if err != nil {
		return nil, err
	}
	return &view{Page: "task", Title: "Task " + tv.ID, Data: &taskPage{Cluster: cluster, Task: tv}}, nil
}

type servicePage struct {
	Cluster string
	Service spec.Service
	Tasks   []taskView
}

func (c *Console) serviceByName(r *http.Request) (string, *spec.Service, error) {
	cluster, name := r.PathValue("cluster"), r.PathValue("service")
	d, err := c.ECS.DescribeServices(r.Context(), &spec.DescribeServicesRequest{Cluster: &cluster, Services: []string{name}})
	if err != nil {
		return "", nil, err
	}
	if len(d.Services) != 1 {
		return "", nil, fmt.Errorf("service %s not found in cluster %s", name, cluster)
	}
	return cluster, &d.Services[0], nil
}

func (c *Console) service(r *http.Request) (*view, error) {
	cluster, s, err := c.serviceByName(r)
	if err != nil {
		return nil, err
	}
	tasks, err := c.tasks(r, cluster, &spec.ListTasksRequest{ServiceName: s.ServiceName})
	if err != nil {
		return nil, err
	}
	if len(s.Events) > 20 {
		s.Events = s.Events[:20]
	}
	return &view{Page: "service", Title: "Service " + spec.Val(s.ServiceName), Data: &servicePage{Cluster: cluster, Service: *s, Tasks: tasks}}, nil
}

type volumesPage struct {
	Clusters []volumesOf
}

type volumesOf struct {
	Cluster   string
	Volumes   []agentapi.Volume
	Snapshots []agentapi.Snapshot
}

func (c *Console) clusterNames(r *http.Request) ([]string, error) {
	l, err := c.ECS.ListClusters(r.Context(), &spec.ListClustersRequest{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range l.ClusterArns {
		out = append(out, shortID(a))
	}
	return out, nil
}

func (c *Console) volumes(r *http.Request) (*view, error) {
	names, err := c.clusterNames(r)
	if err != nil {
		return nil, err
	}
	p := &volumesPage{}
	for _, cl := range names {
		vs, err := c.Volumes.DescribeVolumes(r.Context(), &agentapi.VolumesRequest{Cluster: cl})
		if err != nil {
			return nil, err
		}
		ss, err := c.Volumes.DescribeSnapshots(r.Context(), &agentapi.SnapshotsRequest{Cluster: cl})
		if err != nil {
			return nil, err
		}
		if len(vs.Volumes) > 0 || len(ss.Snapshots) > 0 {
			p.Clusters = append(p.Clusters, volumesOf{Cluster: cl, Volumes: vs.Volumes, Snapshots: ss.Snapshots})
		}
	}
	return &view{Page: "volumes", Title: "Block volumes", Data: p}, nil
}

type fsView struct {
	efs.FileSystemDescription
	MountTargets []efs.MountTarget
	AccessPoints []efs.AccessPoint
	// Mounts counts the file system's open sessions (mounts).
	Mounts int64
}

// efsGet calls the EFS API in-process.
func (c *Console) efsGet(r *http.Request, path string, out any) error {
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(r.Context())
	rec := httptest.NewRecorder()
	c.EFS.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("EFS %s: %s", path, strings.TrimSpace(rec.Body.String()))
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

func (c *Console) filesystems(r *http.Request) (*view, error) {
	var fss struct{ FileSystems []efs.FileSystemDescription }
	if err := c.efsGet(r, efs.PathPrefix+"file-systems", &fss); err != nil {
		return nil, err
	}
	var out []fsView
	for _, f := range fss.FileSystems {
		v := fsView{FileSystemDescription: f}
		var mts struct{ MountTargets []efs.MountTarget }
		if err := c.efsGet(r, efs.PathPrefix+"mount-targets?FileSystemId="+url.QueryEscape(f.FileSystemId), &mts); err != nil {
			return nil, err
		}
		v.MountTargets = mts.MountTargets
		var aps struct{ AccessPoints []efs.AccessPoint }
		if err := c.efsGet(r, efs.PathPrefix+"access-points?FileSystemId="+url.QueryEscape(f.FileSystemId), &aps); err != nil {
			return nil, err
		}
		v.AccessPoints = aps.AccessPoints
		if n, err := c.Store.Count(r.Context(), state.FSMetaPrefix(f.FileSystemId)+"s/"); err == nil {
			v.Mounts = n
		}
		out = append(out, v)
	}
	return &view{Page: "filesystems", Title: "File systems", Data: out}, nil
}
