package actors

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/concert/ticketing/messages"
)

// TestCopyReservationCopiesEveryField sets every field of a Reservation,
// whatever fields it has now or later, to a value of its own and checks
// that copyReservation (which snapshots use instead of proto.Clone) copies
// it: a field added to the message and not to copyReservation fails here.
func TestCopyReservationCopiesEveryField(t *testing.T) {
	src := &messages.Reservation{}
	m := src.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		n := int64(i + 1)
		var v protoreflect.Value
		switch f.Kind() {
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			v = protoreflect.ValueOfEnum(f.Enum().Values().Get(f.Enum().Values().Len() - 1).Number())
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			v = protoreflect.ValueOfInt64(n)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			v = protoreflect.ValueOfInt32(int32(n))
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString("field-" + string(f.Name()))
		default:
			t.Fatalf("field %s has kind %s: teach copyReservation (and this test) to copy it", f.Name(), f.Kind())
		}
		if f.IsList() || f.IsMap() || f.HasPresence() {
			t.Fatalf("field %s is a list, a map or optional: copyReservation copies plain scalars only", f.Name())
		}
		m.Set(f, v)
	}
	// A field this binary does not know (written by a newer one) too.
	m.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	var dst messages.Reservation
	copyReservation(&dst, src)
	if !proto.Equal(&dst, src) {
		t.Fatalf("copy differs:\n got %v\nwant %v", &dst, src)
	}
	src.Id++ // the copy shares nothing
	if dst.Id == src.Id {
		t.Fatal("the copy changed with the source")
	}
}
