// Package loadtest will hold the open-loop load generator and its latency
// recording (HDR histograms), reports and plots.
//
// Not built yet: see the load tester issue. Nothing here is used.
package loadtest
