package faultds

import (
	"testing"

	"github.com/ipfs/go-datastore"
)

func TestPredicates(t *testing.T) {
	put := func(k string) Op { return Op{Kind: OpPut, Keys: []datastore.Key{key(k)}} }
	sync := func(k string) Op { return Op{Kind: OpSync, Keys: []datastore.Key{key(k)}} }
	batch := Op{Kind: OpCommit, Keys: []datastore.Key{key("/a/1"), key("/docs/x/log/1")}}
	docs := KeyPrefix("/docs")
	for _, c := range []struct {
		name string
		p    Predicate
		op   Op
		want bool
	}{
		{"nil selects all", nil, put("/x"), true},
		{"kind", Kinds(OpSync, OpCommit), sync("/"), true},
		{"other kind", Kinds(OpSync), put("/x"), false},
		{"prefix itself", docs, put("/docs"), true},
		{"below prefix", docs, put("/docs/x"), true},
		{"whole segments", docs, put("/docsX/y"), false},
		{"elsewhere", docs, put("/node/key"), false},
		{"batch holding one", docs, batch, true},
		{"batch holding none", KeyPrefix("/node"), batch, false},
		{"sync of all", docs, sync("/"), true},
		{"sync below", docs, sync("/docs/x"), true},
		{"sync elsewhere", docs, sync("/node"), false},
		{"and", And(Kinds(OpPut), docs), put("/docs/x"), true},
		{"and fails one", And(Kinds(OpSync), docs), put("/docs/x"), false},
	} {
		if got := c.p.match(c.op); got != c.want {
			t.Errorf("%s: %v selects %v = %v, want %v", c.name, c.p != nil, c.op, got, c.want)
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[*Op]string{
		{Kind: OpSync, Keys: []datastore.Key{key("/")}}:               "sync /",
		{Kind: OpCommit, Keys: []datastore.Key{key("/a"), key("/b")}}: "commit of 2 keys (first /a)",
		{Kind: OpDelete}: "delete",
		{Kind: Kind(9), Keys: []datastore.Key{key("/z")}}: "kind(9) /z",
	} {
		if got := op.String(); got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}
