// A story where a bored viewer could be cut to the same beat again and again: the lounge cuts to the
// alarm, and the alarm leads back to the lounge. `engage story check` warns about it.
-> lounge

=== lounge ===
# intensity: 0.1
# tone: calm
# duration: 40
# interruptible
# cut_to: alarm
Nothing happens in the lounge. The clock ticks.
+ [Sit a while longer #intensity: 0.1] -> lounge
+ [Go home #intensity: 0.05] -> home

=== alarm ===
# intensity: 0.9
# tone: frantic
# duration: 20
An alarm rings through the building, then stops as suddenly as it started.
-> lounge

=== home ===
# intensity: 0.1
# ending
Home, at last.
-> END
