"""What is measured: pure metric functions of RequestRecords, and trackers that watch a window."""
