package booking

import "sync"

// cache is a bounded map of immutable facts. When full it starts over: the
// facts can always be read again, so a crude bound is enough.
type cache[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int
}

func newCache[K comparable, V any](max int) *cache[K, V] {
	return &cache[K, V]{m: make(map[K]V), max: max}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = v
	c.mu.Unlock()
}

// putAll stores every entry of m under one lock, clearing first if they
// would not fit.
func (c *cache[K, V]) putAll(m map[K]V) {
	c.mu.Lock()
	if len(c.m)+len(m) > c.max {
		clear(c.m)
	}
	for k, v := range m {
		if len(c.m) >= c.max {
			break
		}
		c.m[k] = v
	}
	c.mu.Unlock()
}
