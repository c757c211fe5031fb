package file

import (
	"testing"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Objects { return New(t.TempDir()) })
}
