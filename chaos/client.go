package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	stdhttp "net/http"
	"time"
)

// Client speaks the API and records every request in a history.
type Client struct {
	Base     string
	AdminKey string
	ID       int // the client id porcupine draws the operation under
	h        *History
	http     *stdhttp.Client
}

// NewClient returns a client of base recording into h. Every request opens
// its own connection, so a request sent while the server is down is refused
// cleanly (never sent) instead of being written into a dead keep-alive
// connection (unknown outcome).
func NewClient(base string, id int, h *History, timeout time.Duration) *Client {
	return &Client{Base: base, ID: id, h: h, http: &stdhttp.Client{
		Timeout:   timeout,
		Transport: &stdhttp.Transport{DisableKeepAlives: true},
	}}
}

// answer is what a request got back.
type answer struct {
	status int
	body   []byte
}

// send runs one request for op, classifies its outcome and records it.
// header holds name, value pairs. It returns the answer body of a 2xx.
func (c *Client) send(op *Op, method, path string, body any, header ...string) []byte {
	op.Client = c.ID
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := stdhttp.NewRequestWithContext(context.Background(), method, c.Base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	c.h.begin(op)
	res, err := c.http.Do(req)
	var a answer
	if err == nil {
		a.status = res.StatusCode
		op.RetryAfter = res.Header.Get("Retry-After")
		a.body, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	c.h.finish(op)
	switch {
	case err != nil:
		op.Err = err.Error()
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			op.Outcome = Refused
		} else {
			op.Outcome = Unknown
		}
		return nil
	case a.status >= 200 && a.status < 300:
		op.Outcome, op.Status = OK, a.status
		return a.body
	case a.status >= 500:
		op.Outcome, op.Status = Unknown, a.status
	default:
		op.Outcome, op.Status = Fail, a.status
	}
	var e struct{ Code string }
	_ = json.Unmarshal(a.body, &e)
	op.Code = e.Code
	return nil
}

// reservation is the reservation object of the API.
type reservation struct {
	ID     int64  `json:"id"`
	UserID int64  `json:"userId"`
	SeatID int64  `json:"seatId"`
	Option int64  `json:"concertOptionId"`
	Price  int64  `json:"price"`
	Status string `json:"status"`
}

func (op *Op) setReservation(b []byte) {
	var r reservation
	if json.Unmarshal(b, &r) == nil {
		op.ResID, op.ResStatus, op.ResSeat, op.Price = r.ID, r.Status, r.SeatID, r.Price
		if op.User == 0 {
			op.User = r.UserID
		}
	}
}

func (op *Op) setBalance(b []byte) {
	var p struct{ Balance int64 }
	if json.Unmarshal(b, &p) == nil {
		op.Balance = p.Balance
	}
}

// CreateUser registers a user; 0 when it failed.
func (c *Client) CreateUser(name string) int64 {
	op := &Op{Kind: KindUser}
	b := c.send(op, "POST", "/users", map[string]any{"name": name})
	var u struct{ ID int64 }
	if b != nil && json.Unmarshal(b, &u) == nil {
		op.User = u.ID
	}
	return op.User
}

// Token asks for the user's token; "" unless it is ACTIVE.
func (c *Client) Token(user int64) (*Op, string) {
	op := &Op{Kind: KindToken, User: user}
	b := c.send(op, "POST", "/users/token", map[string]any{"userId": user})
	var t struct{ Token, Status string }
	if b == nil || json.Unmarshal(b, &t) != nil || t.Status != "ACTIVE" {
		return op, ""
	}
	return op, t.Token
}

// Charge tops up a wallet (key: optional Idempotency-Key).
func (c *Client) Charge(user, amount int64, key string) *Op {
	op := &Op{Kind: KindCharge, User: user, Amount: amount, Key: key}
	if b := c.send(op, "PATCH", "/customers/point", map[string]any{"userId": user, "chargeBalance": amount}, "Idempotency-Key", key); b != nil {
		op.setBalance(b)
	}
	return op
}

// Balance reads a wallet.
func (c *Client) Balance(user int64, final bool) *Op {
	op := &Op{Kind: KindBalance, User: user, Final: final}
	if b := c.send(op, "GET", fmt.Sprintf("/customers/point?userId=%d", user), nil); b != nil {
		op.setBalance(b)
	}
	return op
}

// Hold holds a seat.
func (c *Client) Hold(user, seat, option int64, token string) *Op {
	op := &Op{Kind: KindHold, User: user, Seat: seat, Option: option}
	if b := c.send(op, "POST", "/reservations", map[string]any{"userId": user, "seatId": seat}, "Authorization", "Bearer "+token); b != nil {
		op.setReservation(b)
	}
	return op
}

// Cancel cancels a reservation.
func (c *Client) Cancel(user, res int64, token string) *Op {
	op := &Op{Kind: KindCancel, User: user, Res: res}
	if b := c.send(op, "DELETE", fmt.Sprintf("/reservations/%d", res), nil, "Authorization", "Bearer "+token); b != nil {
		op.setReservation(b)
	}
	return op
}

// Pay pays a reservation (key: optional Idempotency-Key).
func (c *Client) Pay(user, res, amount int64, key, token string) *Op {
	op := &Op{Kind: KindPay, User: user, Res: res, Amount: amount, Key: key}
	if b := c.send(op, "POST", "/payments", map[string]any{"reservationId": res, "amount": amount},
		"Authorization", "Bearer "+token, "Idempotency-Key", key); b != nil {
		op.setBalance(b)
	}
	return op
}

// Reservation reads a reservation.
func (c *Client) Reservation(user, res int64, token string, final bool) *Op {
	op := &Op{Kind: KindReservation, User: user, Res: res, Final: final}
	if b := c.send(op, "GET", fmt.Sprintf("/reservations/%d", res), nil, "Authorization", "Bearer "+token); b != nil {
		op.setReservation(b)
	}
	return op
}

// Seats reads the free seats of a date.
func (c *Client) Seats(concert, option int64, date string, final bool) *Op {
	op := &Op{Kind: KindSeats, Option: option, Final: final}
	b := c.send(op, "GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", concert, date), nil)
	if b == nil {
		return op
	}
	var avail []struct {
		ConcertOptionID int64 `json:"concertOptionId"`
		Seats           []struct {
			SeatID int64 `json:"seatId"`
		} `json:"seats"`
	}
	if err := json.Unmarshal(b, &avail); err != nil {
		op.Outcome, op.Err = Unknown, "undecodable answer: "+err.Error()
		return op
	}
	op.Free = []int64{}
	for _, a := range avail {
		for _, s := range a.Seats {
			op.Free = append(op.Free, s.SeatID)
		}
	}
	return op
}

// Concert is a concert made for a run.
type Concert struct {
	ID      int64
	Dates   []string          // YYYY-MM-DD
	Options []int64           // the dates' concert option ids
	Seats   map[int64][]int64 // option → its seat ids
	SeatOpt map[int64]int64   // seat → its option
	Price   int64
}

// CreateConcert creates a concert of dates × seats at price through the
// admin route and reads its seats. It is not recorded.
func (c *Client) CreateConcert(title string, dates []string, seats int, price int64) (*Concert, error) {
	body, _ := json.Marshal(map[string]any{"title": title, "dates": dates, "seatsPerDate": seats, "price": price})
	req, _ := stdhttp.NewRequest("POST", c.Base+"/admin/concerts", bytes.NewReader(body))
	req.Header.Set("X-Admin-Key", c.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 {
		return nil, fmt.Errorf("create concert: %d %s", res.StatusCode, raw)
	}
	var k struct {
		ID    int64
		Dates []struct {
			ConcertOptionID int64  `json:"concertOptionId"`
			ConcertDate     string `json:"concertDate"`
		}
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, err
	}
	out := &Concert{ID: k.ID, Seats: map[int64][]int64{}, SeatOpt: map[int64]int64{}, Price: price}
	for _, d := range k.Dates {
		out.Dates = append(out.Dates, d.ConcertDate)
		out.Options = append(out.Options, d.ConcertOptionID)
	}
	for i, opt := range out.Options {
		op := c.Seats(k.ID, opt, out.Dates[i], false)
		if op.Outcome != OK {
			return nil, fmt.Errorf("read seats of %s: %s %s %s", out.Dates[i], op.Outcome, op.Code, op.Err)
		}
		out.Seats[opt] = op.Free
		for _, s := range op.Free {
			out.SeatOpt[s] = opt
		}
	}
	return out, nil
}

// dateString is a date d days from today (UTC).
func dateString(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format(time.DateOnly) }
