package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
)

// confirmation is what an action's confirmation page shows.
type confirmation struct {
	Question, Detail, Action, Button, Back string
	// Count is the service's desired count, for the scale form.
	Count *int32
}

func (c *Console) confirmStop(r *http.Request) (*view, error) {
	cluster, tv, err := c.taskByID(r)
	if err != nil {
		return nil, err
	}
	back := "/console/clusters/" + url.PathEscape(cluster) + "/tasks/" + url.PathEscape(tv.ID)
	return &view{Page: "confirm", Title: "Stop task", Data: &confirmation{Question: "Stop task " + tv.ID + "?",
		Detail: fmt.Sprintf("%s, %s in %s. Its containers get SIGTERM, then SIGKILL after their stop timeout.", tv.Definition, tv.Status, tv.Zone),
		Action: back + "/stop", Button: "Stop task", Back: back}}, nil
}

func (c *Console) stopTask(r *http.Request) (string, error) {
	cluster, id := r.PathValue("cluster"), r.PathValue("task")
	if _, err := c.ECS.StopTask(r.Context(), &spec.StopTaskRequest{Cluster: &cluster, Task: &id, Reason: ptr("Stopped from the Berth console")}); err != nil {
		return "", err
	}
	return "/console/clusters/" + url.PathEscape(cluster) + "/tasks/" + url.PathEscape(id) + "?done=" + url.QueryEscape("Task "+id+" is stopping."), nil
}

func (c *Console) confirmScale(r *http.Request) (*view, error) {
	cluster, s, err := c.serviceByName(r)
	if err != nil {
		return nil, err
	}
	back := "/console/clusters/" + url.PathEscape(cluster) + "/services/" + url.PathEscape(spec.Val(s.ServiceName))
	n := spec.Val(s.DesiredCount)
	if q := r.URL.Query().Get("count"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("a desired count is a whole number, 0 or more")
		}
		n = int32(v)
	}
	return &view{Page: "confirm", Title: "Scale service", Data: &confirmation{Question: fmt.Sprintf("Scale service %s from %d to %d tasks?", spec.Val(s.ServiceName), spec.Val(s.DesiredCount), n),
		Detail: "The service starts or stops tasks until it runs the new desired count.", Action: back + "/scale", Button: "Scale service", Back: back, Count: &n}}, nil
}

func (c *Console) scaleService(r *http.Request) (string, error) {
	cluster, name := r.PathValue("cluster"), r.PathValue("service")
	n, err := strconv.Atoi(r.PostForm.Get("count"))
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("a desired count is a whole number, 0 or more")
	}
	if _, err := c.ECS.UpdateService(r.Context(), &spec.UpdateServiceRequest{Cluster: &cluster, Service: &name, DesiredCount: ptrI32(int32(n))}); err != nil {
		return "", err
	}
	return "/console/clusters/" + url.PathEscape(cluster) + "/services/" + url.PathEscape(name) + "?done=" + url.QueryEscape(fmt.Sprintf("Service %s now wants %d tasks.", name, n)), nil
}

func (c *Console) confirmSnapshot(r *http.Request) (*view, error) {
	cluster, id := r.PathValue("cluster"), r.PathValue("volume")
	vs, err := c.Volumes.DescribeVolumes(r.Context(), &agentapi.VolumesRequest{Cluster: cluster, VolumeIDs: []string{id}})
	if err != nil {
		return nil, err
	}
	if len(vs.Volumes) != 1 {
		return nil, fmt.Errorf("volume %s not found in cluster %s", id, cluster)
	}
	v := vs.Volumes[0]
	return &view{Page: "confirm", Title: "Snapshot volume", Data: &confirmation{Question: "Take a snapshot of volume " + id + "?",
		Detail: fmt.Sprintf("%d GiB %s in %s, %s. Only the blocks changed since its last snapshot are stored.", v.SizeInGiB, v.FilesystemType, v.Zone, v.State),
		Action: "/console/volumes/" + url.PathEscape(cluster) + "/" + url.PathEscape(id) + "/snapshot", Button: "Take snapshot", Back: "/console/volumes"}}, nil
}

func (c *Console) snapshot(r *http.Request) (string, error) {
	cluster, id := r.PathValue("cluster"), r.PathValue("volume")
	out, err := c.Volumes.CreateSnapshot(r.Context(), &agentapi.SnapshotsRequest{Cluster: cluster, VolumeID: id})
	if err != nil {
		return "", err
	}
	msg := "Snapshot requested."
	if len(out.Snapshots) == 1 {
		msg = "Snapshot " + out.Snapshots[0].SnapshotID + " is being taken."
	}
	return "/console/volumes?done=" + url.QueryEscape(msg), nil
}
