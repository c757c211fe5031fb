package ecs

// Small etcd helpers of the edge's own transactions.

import (
	clientv3 "go.etcd.io/etcd/client/v3"
)

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
