package ecs

import (
	"errors"
	"strconv"

	"encoding/json"

	"github.com/berth-project/berth/internal/spec"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func modRevIs(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// noKeysUnder compares true when no key exists under prefix.
func noKeysUnder(prefix string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()
}

func deleteOp(key string) clientv3.Op { return clientv3.OpDelete(key) }

func deletePrefixOp(prefix string) clientv3.Op {
	return clientv3.OpDelete(prefix, clientv3.WithPrefix())
}

func asSpecErr(err error, target **spec.Error) bool { return errors.As(err, target) }

func itoa(n int) string { return strconv.Itoa(n) }

func boolStr(b bool) string { return strconv.FormatBool(b) }
