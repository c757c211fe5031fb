package efs

import (
	"context"
	"net/http"

	"github.com/berth-project/berth/internal/fsmeta"
)

// Lifecycle configuration, backup policy and account preferences: what
// tools read of every file system, answered as Berth has it.

// describeLifecycle answers DescribeLifecycleConfiguration: Berth keeps
// every file in one storage class, so there are never policies.
func (a *API) describeLifecycle(ctx context.Context, r *http.Request) (any, error) {
	if _, err := a.getFS(ctx, r.PathValue("id")); err != nil {
		return nil, err
	}
	return map[string]any{"LifecyclePolicies": []any{}}, nil
}

// putLifecycle answers PutLifecycleConfiguration: an empty list (turning
// lifecycle management off) is what Berth has; a transition is refused,
// as there is no other storage class to move files to.
func (a *API) putLifecycle(ctx context.Context, r *http.Request) (any, error) {
	var in struct{ LifecyclePolicies *[]map[string]string }
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.LifecyclePolicies == nil {
		return nil, badRequest("LifecyclePolicies is required.")
	}
	if _, err := a.getFS(ctx, r.PathValue("id")); err != nil {
		return nil, err
	}
	if len(*in.LifecyclePolicies) > 0 {
		return nil, badRequest("Berth keeps every file in one storage class: lifecycle transitions (TransitionToIA, TransitionToArchive, TransitionToPrimaryStorageClass) are not supported.")
	}
	return map[string]any{"LifecyclePolicies": []any{}}, nil
}

func backupStatus(f *fsmeta.FileSystem) map[string]any {
	st := "DISABLED"
	if f.Backup {
		st = "ENABLED"
	}
	return map[string]any{"BackupPolicy": map[string]string{"Status": st}}
}

// describeBackupPolicy answers DescribeBackupPolicy with the status set
// at creation (Backup) or by PutBackupPolicy. Berth takes no backups of
// its own: a file system's data is as durable as its blob store.
func (a *API) describeBackupPolicy(ctx context.Context, r *http.Request) (any, error) {
	f, err := a.getFS(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return backupStatus(f), nil
}

func (a *API) putBackupPolicy(ctx context.Context, r *http.Request) (any, error) {
	var in struct{ BackupPolicy *struct{ Status string } }
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.BackupPolicy == nil {
		return nil, badRequest("BackupPolicy is required.")
	}
	var on bool
	switch in.BackupPolicy.Status {
	case "ENABLED":
		on = true
	case "DISABLED":
	case "ENABLING", "DISABLING":
		return nil, badRequest("Only ENABLED and DISABLED can be requested; %s is a state EFS reports.", in.BackupPolicy.Status)
	default:
		return nil, &Error{Status: 400, Code: "ValidationException", Msg: "BackupPolicy.Status must be ENABLED or DISABLED."}
	}
	f, err := a.update(ctx, r.PathValue("id"), func(f *fsmeta.FileSystem) error { f.Backup = on; return nil })
	if err != nil {
		return nil, err
	}
	return backupStatus(f), nil
}

// Berth's ids are all of EFS's long form (17 hex digits after the prefix).
var idPreference = map[string]any{"ResourceIdPreference": map[string]any{"ResourceIdType": "LONG_ID", "Resources": []string{"FILE_SYSTEM", "MOUNT_TARGET"}}}

func (a *API) describeAccountPreferences(ctx context.Context, r *http.Request) (any, error) {
	return idPreference, nil
}

func (a *API) putAccountPreferences(ctx context.Context, r *http.Request) (any, error) {
	var in struct{ ResourceIdType string }
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	switch in.ResourceIdType {
	case "LONG_ID":
		return idPreference, nil
	case "SHORT_ID":
		return nil, badRequest("Berth makes only long ids (LONG_ID).")
	default:
		return nil, &Error{Status: 400, Code: "ValidationException", Msg: "ResourceIdType must be LONG_ID or SHORT_ID."}
	}
}
