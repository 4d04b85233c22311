package node_test

import (
	"testing"

	"github.com/concert/ticketing/persistence/pgtest"
)

// TestMain stops the shared throwaway PostgreSQL of pgtest after the tests
// and benchmarks of this package.
func TestMain(m *testing.M) { pgtest.Main(m) }
