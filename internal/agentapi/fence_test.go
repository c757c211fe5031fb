package agentapi

import "testing"

func TestFencing(t *testing.T) {
	v := &Volume{VolumeID: "vol-1"}
	if err := v.CheckEpoch("", 0); err != nil {
		t.Fatalf("a report on an unattached volume: %v", err)
	}
	e1 := v.Attach("task/a", "i1")
	if err := v.CheckEpoch("task/a", e1); err != nil {
		t.Fatalf("current attachment refused: %v", err)
	}
	v.Attachment = nil // the task stopped; the volume is available
	e2 := v.Attach("task/b", "i2")
	if e2 != e1+1 {
		t.Fatalf("epochs %d then %d: want one more", e1, e2)
	}
	for _, c := range []struct {
		task  string
		epoch int64
		ok    bool
	}{
		{"task/b", e2, true},
		{"", e2, true},        // the holder's report under the current epoch
		{"task/a", e1, false}, // the old holder
		{"", e1, false},       // a report under the old epoch
		{"task/a", e2, false}, // the right epoch, another task
		{"task/b", e1, false},
		{"task/b", 0, false},
	} {
		err := v.CheckEpoch(c.task, c.epoch)
		if (err == nil) != c.ok {
			t.Errorf("CheckEpoch(%q, %d) = %v, want ok=%v", c.task, c.epoch, err, c.ok)
		}
	}
	v.Attachment = nil
	if v.CheckEpoch("task/b", e2) == nil {
		t.Error("a detached volume's last attachment still passes")
	}
}
