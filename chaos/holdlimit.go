package chaos

import (
	"fmt"
	"sort"
)

// CheckHoldLimit checks a history against the contract's hold limit: a
// user holds at most limit seats at once. It uses only what the answers
// prove, so it never blames a correct server: a hold is certainly live
// from its 2xx answer until the first cancel or payment of it is sent (or
// the end of the history); a read answered HELD proves the hold live at
// some instant of the read. A violation is limit+1 holds of one user
// certainly live at one instant, or a read of a hold HELD while limit
// others of its user are certainly live throughout the read. Holds must
// not expire during the run (the chaos runs hold for 24 h).
func CheckHoldLimit(ops []*Op, limit int) []string {
	type span struct {
		user, res int64
		from, to  int64
	}
	end := map[int64]int64{} // reservation → first call of a cancel or pay
	var last int64
	for _, o := range ops {
		last = max(last, o.Call, o.Return)
		if (o.Kind == KindCancel || o.Kind == KindPay) && o.Res != 0 {
			if t, ok := end[o.Res]; !ok || o.Call < t {
				end[o.Res] = o.Call
			}
		}
	}
	byUser := map[int64][]span{}
	for _, o := range ops {
		if o.Kind != KindHold || o.Outcome != OK || o.ResID == 0 {
			continue
		}
		s := span{user: o.User, res: o.ResID, from: o.Return, to: last + 1}
		if t, ok := end[o.ResID]; ok {
			s.to = t
		}
		if s.from < s.to {
			byUser[o.User] = append(byUser[o.User], s)
		}
	}
	var bad []string
	for u, spans := range byUser {
		sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
		for _, s := range spans {
			var live []int64
			for _, o := range spans {
				if o.from <= s.from && s.from < o.to {
					live = append(live, o.res)
				}
			}
			if len(live) > limit {
				bad = append(bad, fmt.Sprintf("user %d: %d holds certainly live at %d ns (limit %d): %v", u, len(live), s.from, limit, live))
			}
		}
	}
	for _, o := range ops {
		if o.Kind != KindReservation || o.Outcome != OK || o.ResStatus != "HELD" {
			continue
		}
		var live []int64
		for _, s := range byUser[o.User] {
			if s.res != o.Res && s.from <= o.Call && o.Return <= s.to {
				live = append(live, s.res)
			}
		}
		if len(live) >= limit {
			bad = append(bad, fmt.Sprintf("user %d: %s read HELD while %d other holds were certainly live (limit %d): %v", o.User, o, len(live), limit, live))
		}
	}
	sort.Strings(bad)
	return bad
}
