package agent

import (
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
)

func volumeListOptions(f filters.Args) volume.ListOptions { return volume.ListOptions{Filters: f} }
