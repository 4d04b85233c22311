package actors

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// Reasons of an overload refusal (JournalObserver.Refused).
const (
	// RefusedAdmission: the node's write admission was full (Admission).
	RefusedAdmission = "admission"
	// RefusedBacklog: the actor had too many events waiting behind its
	// write in flight, or was backing off after a refused write.
	RefusedBacklog = "backlog"
)

// JournalObserver is implemented by a Journal that also wants to know what
// the actors do (Metrics.Observe wraps a Journal in one). Journaled calls
// it on the actor's goroutine, so every method must be cheap; the events
// passed must not be kept or changed.
type JournalObserver interface {
	// Recovered: an incarnation of actorID recovered its state (snapshot
	// plus events replayed) in took.
	Recovered(actorID string, took time.Duration, replayed int64)
	// Persisted: live events (not replayed ones) were applied and queued
	// for the journal; the reply that rests on them waits for the write.
	Persisted(actorID string, events []proto.Message)
	// Refused: a command was refused as overloaded (503) with nothing
	// changed, for reason RefusedAdmission or RefusedBacklog.
	Refused(actorID string, reason string)
}

// Metrics are the domain's Prometheus series: business counters taken from
// the events the actors persist, recovery times and overload refusals. It
// sees them through the journal (Observe), so the actors carry no metrics
// code of their own.
type Metrics struct {
	holds, holdCancels, holdExpiries              prometheus.Counter
	paymentsStarted, paymentsConfirmed            prometheus.Counter
	paymentAborts                                 *prometheus.CounterVec
	charges, chargedPoints, debits, debitedPoints prometheus.Counter
	tokensIssued, admissions                      prometheus.Counter
	tokenExpiries                                 *prometheus.CounterVec
	expiryPaid, expiryIdle, expiryAbandoned       prometheus.Counter
	refusals                                      *prometheus.CounterVec
	recovery                                      *prometheus.HistogramVec
	recovered                                     *prometheus.CounterVec
	// The children of the known kinds, looked up without hashing labels.
	refusedAdmission, refusedBacklog map[string]prometheus.Counter
	recoveryByKind                   map[string]prometheus.Observer
	recoveredByKind                  map[string]prometheus.Counter
}

// actorKinds are the kinds whose series exist from the start (at 0).
var actorKinds = []string{"seat", "wallet", "queue"}

// NewMetrics registers the domain series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		holds:             counter("seat_holds_total", "Seats held for a reservation."),
		holdCancels:       counter("seat_hold_cancels_total", "Holds cancelled by their user."),
		holdExpiries:      counter("seat_hold_expiries_total", "Holds that ran out unpaid (HOLD_TTL)."),
		paymentsStarted:   counter("seat_payments_started_total", "Payments started (the reservation locked, the wallet asked to debit)."),
		paymentsConfirmed: counter("seat_payments_confirmed_total", "Payments confirmed: the seat is sold."),
		paymentAborts: vec("seat_payment_aborts_total",
			"Payments aborted after they started (the debit refused), by the refusal's code; the hold is kept or expires.", "code"),
		charges:       counter("wallet_charges_total", "Wallet top-ups (PATCH /customers/point) recorded."),
		chargedPoints: counter("wallet_charged_points_total", "Points added by top-ups."),
		debits:        counter("wallet_debits_total", "Payment debits taken from wallets."),
		debitedPoints: counter("wallet_debited_points_total", "Points taken by payment debits."),
		tokensIssued:  counter("queue_tokens_issued_total", "Queue tokens issued (users joining the line)."),
		admissions:    counter("queue_admissions_total", "Queue tokens admitted from the line (WAIT to ACTIVE)."),
		tokenExpiries: vec("queue_token_expiries_total",
			"Queue tokens expired, by reason: paid (the user paid), idle (ACTIVE and unused for TOKEN_IDLE_TTL), abandoned (WAIT and not polled for WAIT_IDLE_TTL).", "reason"),
		refusals: vec("actor_overload_refusals_total",
			"Commands refused with 503 because the store could not take their write now, by actor kind and reason: admission (the node's write admission full), backlog (the actor's own queue of unwritten events full).", "kind", "reason"),
		recovery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "actor_recovery_duration_seconds",
			Help:    "Time an actor took to recover its state (load its snapshot, replay the events after it), by actor kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"kind"}),
		recovered: vec("actor_recovered_events_total", "Events replayed by actor recoveries, by actor kind.", "kind"),
	}
	reg.MustRegister(m.recovery)
	m.expiryPaid = m.tokenExpiries.WithLabelValues(ExpiredReasonPaid)
	m.expiryIdle = m.tokenExpiries.WithLabelValues(ExpiredReasonIdle)
	m.expiryAbandoned = m.tokenExpiries.WithLabelValues(ExpiredReasonAbandoned)
	m.refusedAdmission, m.refusedBacklog = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	m.recoveryByKind, m.recoveredByKind = map[string]prometheus.Observer{}, map[string]prometheus.Counter{}
	for _, k := range actorKinds {
		m.refusedAdmission[k] = m.refusals.WithLabelValues(k, RefusedAdmission)
		m.refusedBacklog[k] = m.refusals.WithLabelValues(k, RefusedBacklog)
		m.recoveryByKind[k] = m.recovery.WithLabelValues(k)
		m.recoveredByKind[k] = m.recovered.WithLabelValues(k)
	}
	return m
}

// Observe returns j with m observing it: actors given the result count
// into m (JournalObserver).
func (m *Metrics) Observe(j Journal) Journal { return observedJournal{Journal: j, m: m} }

type observedJournal struct {
	Journal
	m *Metrics
}

func (o observedJournal) Recovered(actorID string, took time.Duration, replayed int64) {
	k := kindOf(actorID)
	if obs, ok := o.m.recoveryByKind[k]; ok {
		obs.Observe(took.Seconds())
		o.m.recoveredByKind[k].Add(float64(replayed))
		return
	}
	o.m.recovery.WithLabelValues(k).Observe(took.Seconds())
	o.m.recovered.WithLabelValues(k).Add(float64(replayed))
}

func (o observedJournal) Refused(actorID string, reason string) {
	k := kindOf(actorID)
	byKind := o.m.refusedAdmission
	if reason == RefusedBacklog {
		byKind = o.m.refusedBacklog
	}
	if c, ok := byKind[k]; ok {
		c.Inc()
		return
	}
	o.m.refusals.WithLabelValues(k, reason).Inc()
}

func (o observedJournal) Persisted(_ string, events []proto.Message) {
	m := o.m
	for _, e := range events {
		switch e := e.(type) {
		case *messages.SeatHeld:
			m.holds.Inc()
		case *messages.HoldCancelled:
			m.holdCancels.Inc()
		case *messages.HoldExpired:
			m.holdExpiries.Inc()
		case *messages.PaymentStarted:
			m.paymentsStarted.Inc()
		case *messages.ReservationConfirmed:
			m.paymentsConfirmed.Inc()
		case *messages.PaymentAborted:
			m.paymentAborts.WithLabelValues(e.GetCode()).Inc()
		case *messages.PointsCharged:
			m.charges.Inc()
			m.chargedPoints.Add(float64(e.GetAmount()))
		case *messages.PaymentDebited:
			m.debits.Inc()
			m.debitedPoints.Add(float64(e.GetAmount()))
		case *messages.TokenIssued:
			m.tokensIssued.Inc()
		case *messages.TokenActivated:
			m.admissions.Inc()
		case *messages.TokenExpired:
			switch e.GetReason() {
			case ExpiredReasonPaid:
				m.expiryPaid.Inc()
			case ExpiredReasonIdle:
				m.expiryIdle.Inc()
			case ExpiredReasonAbandoned:
				m.expiryAbandoned.Inc()
			default:
				m.tokenExpiries.WithLabelValues(e.GetReason()).Inc()
			}
		}
	}
}

// kindOf is the kind of an actor id ("seat/42" → "seat").
func kindOf(actorID string) string {
	kind, _, _ := strings.Cut(actorID, "/")
	return kind
}
