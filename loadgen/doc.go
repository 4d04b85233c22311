// Package loadgen is the project's contention benchmark: it drives running
// concert-ticketing servers over their public HTTP API only, checks the
// contract's invariants after each scenario, and measures the ceilings the
// figures are read against. cmd/concertbench is its command.
//
// Each scenario creates its own fixture through the API (Setup: a concert,
// users with points and ACTIVE tokens), runs its load closed loop (everyone
// at once) or open loop (Common.Rate arrivals per second, latency from each
// intended send time, so a stalled server cannot hide its queueing), and
// ends with its verdict:
//
//   - RunHotSeat: fans try the one seat of a date at once; exactly one wins.
//   - RunSoldOut: fans race for every seat of many dates and pay; holds =
//     payments = seats, none sold twice, nothing left on offer.
//   - RunHolds: users hold a random seat and cancel it for a while: the
//     sustained hold rate; every seat free again at the end.
//   - RunFreshHolds: clients hold a seat nobody has tried, each hold
//     durable and kept (never paid nor cancelled), for a while: durable
//     holds/s and the server's CPU per hold; every 200 shows as held.
//   - RunWalletStorm: charges (with Idempotency-Key, some replayed) and
//     payments on a few wallets; every balance exact, money conserved.
//   - RunJourney: token, wait in line, dates, seats, charge, hold, pay, with
//     think time; seats sold = payments = debits.
//   - RunQueueSurge: a surge of token requests; one token per user, FIFO
//     line, active count within ACTIVE_TOKENS, admission from the head.
//   - RunHot: the older on-sale of the seats of one date.
//
// The verdicts are pure functions (CheckHotSeat, CheckSoldOut, ...) of what a
// run observed, so each is tested with deliberately wrong observations.
// MeasurePostgres, MeasureHTTP and MeasureGenerator are the ceilings; a
// Report gathers the results with the machine's description, computes the
// ratios and the targets, and is written as a terminal table, JSON or a
// self-contained HTML page (inline SVG charts), or compared with another.
//
// The client is fasthttp with keep-alive connections; several base URLs
// share the load, a user's requests always going to the same one.
package loadgen
