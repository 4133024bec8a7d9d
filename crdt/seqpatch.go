package crdt

// patches collects the patches of one change, joining neighbours.
type patches[V SeqValue] struct {
	list []Patch[V]
}

func (p *patches[V]) insert(at int, vals []V) {
	if k := len(p.list); k > 0 {
		last := &p.list[k-1]
		if last.Index+len(last.Insert) == at {
			last.Insert = append(last.Insert[:len(last.Insert):len(last.Insert)], vals...)
			return
		}
	}
	p.list = append(p.list, Patch[V]{Index: at, Insert: vals})
}

func (p *patches[V]) delete(at, n int) {
	if k := len(p.list); k > 0 {
		last := &p.list[k-1]
		if len(last.Insert) == 0 && last.Index == at {
			last.Delete += n
			return
		}
	}
	p.list = append(p.list, Patch[V]{Index: at, Delete: n})
}
