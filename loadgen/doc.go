// Package loadgen is the project's benchmark tool: it drives a running
// concert-ticketing server over its public HTTP API and measures how it
// behaves under contention.
//
// A run has two steps. Setup creates its own fixture through the API (a
// concert with D dates of S seats, U users with points and ACTIVE queue
// tokens); a scenario then loads the server:
//
//   - RunHolds, the hold path: U users, user i on date i%D, each looping
//     hold-a-random-seat → cancel-the-hold, closed loop or open loop at a
//     fixed offered rate (latency measured from the intended send time, so
//     a stalled server cannot hide its queueing: no coordinated omission).
//   - RunHot, the on-sale: F fans race for the seats of one date; each holds
//     a seat or sees none left, and winners pay. The number of winners must
//     equal the number of seats.
//
// The client is fasthttp with one keep-alive connection per concurrent
// user, so the generator stays cheap on a machine it shares with the
// server. Every Result carries the Machine string it was measured on.
package loadgen
