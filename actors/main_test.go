package actors

import (
	"testing"

	"github.com/concert/ticketing/persistence/pgtest"
)

// TestMain stops the shared PostgreSQL server of pgtest after the tests.
func TestMain(m *testing.M) { pgtest.Main(m) }
