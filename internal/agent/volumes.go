package agent

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/berth-project/berth/internal/spec"
)

// taskFailure is a reason a task could not start, with ECS's stop code.
type taskFailure struct {
	code, reason string
}

func (f *taskFailure) Error() string { return f.reason }

func volumeError(format string, args ...any) *taskFailure {
	return &taskFailure{code: "TaskFailedToStart", reason: "CannotCreateVolumeError: " + fmt.Sprintf(format, args...)}
}

// prepareVolumes makes every volume of the task exist and returns, per
// task-definition volume name, how to mount it.
func (r *runner) prepareVolumes(ctx context.Context) (map[string]mount.Mount, error) {
	td := &r.def
	out := map[string]mount.Mount{}
	for _, v := range td.Volumes {
		name := spec.Val(v.Name)
		if spec.Val(v.ConfiguredAtLaunch) {
			continue // block volumes: attachBlockVolumes
		}
		switch {
		case v.Host != nil && spec.Val(v.Host.SourcePath) != "":
			src, err := r.hostPathSource(name, filepath.Clean(*v.Host.SourcePath))
			if err != nil {
				return nil, err
			}
			out[name] = mount.Mount{Type: mount.TypeBind, Source: src}
		case v.Host != nil, v.DockerVolumeConfiguration != nil && spec.Val(v.DockerVolumeConfiguration.Scope) != "shared",
			v.DockerVolumeConfiguration == nil && v.EfsVolumeConfiguration == nil && v.FsxWindowsFileServerVolumeConfiguration == nil:
			// Task scope: one volume for the task's containers, removed at cleanup.
			vn := fmt.Sprintf("ecs-%s-%d-%s-%s", spec.Val(td.Family), spec.Val(td.Revision), name, r.id[:20])
			opts := volume.CreateOptions{Name: vn, Driver: "local", Labels: map[string]string{LabelTaskVolume: r.arn, LabelInstance: r.a.id}}
			if d := v.DockerVolumeConfiguration; d != nil {
				if d.Driver != nil {
					opts.Driver = *d.Driver
				}
				opts.DriverOpts = d.DriverOpts
				maps.Copy(opts.Labels, d.Labels)
			} else if r.ephemeralBytes() > 0 {
				// On the task's ephemeral storage, which bounds it.
				dir, err := r.scratchDir(name)
				if err != nil {
					return nil, err
				}
				opts.DriverOpts = map[string]string{"type": "none", "o": "bind", "device": dir}
			}
			if _, err := r.a.docker.VolumeCreate(ctx, opts); err != nil {
				return nil, volumeError("create task volume %s for volume '%s': %v", vn, name, err)
			}
			out[name] = mount.Mount{Type: mount.TypeVolume, Source: vn}
		case v.DockerVolumeConfiguration != nil:
			if err := r.sharedVolume(ctx, name, v.DockerVolumeConfiguration); err != nil {
				return nil, err
			}
			out[name] = mount.Mount{Type: mount.TypeVolume, Source: name}
		case v.EfsVolumeConfiguration != nil:
			p, err := r.mountEFS(ctx, name, v.EfsVolumeConfiguration)
			if err != nil {
				return nil, err
			}
			out[name] = mount.Mount{Type: mount.TypeBind, Source: p}
		default: // FSx for Windows File Server, mounted directly
			p, err := r.mountFSx(ctx, name, v.FsxWindowsFileServerVolumeConfiguration)
			if err != nil {
				return nil, err
			}
			out[name] = mount.Mount{Type: mount.TypeBind, Source: p}
		}
	}
	return out, nil
}

// sharedVolume checks or creates a shared-scope Docker volume named as the
// task-definition volume, and reports that this instance holds it.
func (r *runner) sharedVolume(ctx context.Context, name string, d *spec.DockerVolumeConfiguration) error {
	driver := spec.Val(d.Driver)
	if driver == "" {
		driver = "local"
	}
	got, err := r.a.docker.VolumeInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		if !spec.Val(d.Autoprovision) {
			return volumeError("shared volume '%s' does not exist on this instance and autoprovision is false", name)
		}
		labels := map[string]string{LabelInstance: r.a.id}
		maps.Copy(labels, d.Labels)
		if _, err := r.a.docker.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: driver, DriverOpts: d.DriverOpts, Labels: labels}); err != nil {
			return volumeError("create shared volume '%s' with driver %s: %v", name, driver, err)
		}
	case err != nil:
		return volumeError("inspect shared volume '%s': %v", name, err)
	default:
		if got.Driver != driver {
			return volumeError("shared volume '%s' exists with driver %s, but the task definition asks for %s", name, got.Driver, driver)
		}
		if d.DriverOpts != nil && !maps.Equal(got.Options, d.DriverOpts) {
			return volumeError("shared volume '%s' exists with driverOpts %v, but the task definition asks for %v", name, got.Options, d.DriverOpts)
		}
		own := map[string]string{}
		for k, v := range got.Labels {
			if !strings.HasPrefix(k, "com.berth.") {
				own[k] = v
			}
		}
		if d.Labels != nil && !maps.Equal(own, d.Labels) {
			return volumeError("shared volume '%s' exists with labels %v, but the task definition asks for %v", name, own, d.Labels)
		}
	}
	return nil
}
