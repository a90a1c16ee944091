package engine

// orderIndex finds open orders by ID.
type orderIndex struct {
	m map[OrderID]*order
}

func (x *orderIndex) init()                 { x.m = make(map[OrderID]*order) }
func (x *orderIndex) get(id OrderID) *order { return x.m[id] }
func (x *orderIndex) put(o *order)          { x.m[o.id] = o }
func (x *orderIndex) del(id OrderID)        { delete(x.m, id) }
func (x *orderIndex) len() int              { return len(x.m) }
