package booking

import "testing"

func TestCachePutAllStaysBounded(t *testing.T) {
	c := newCache[int, int](4)
	c.put(1, 1)
	c.putAll(map[int]int{2: 2, 3: 3})
	if v, ok := c.get(1); !ok || v != 1 {
		t.Fatalf("entry 1 lost while there was room: %v %v", v, ok)
	}
	c.putAll(map[int]int{4: 4, 5: 5, 6: 6, 7: 7, 8: 8})
	if len(c.m) > 4 {
		t.Fatalf("%d entries, bound 4", len(c.m))
	}
	if _, ok := c.get(1); ok {
		t.Fatal("the cache did not start over when the batch did not fit")
	}
}
