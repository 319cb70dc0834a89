// The Last Broadcast - a sample story for engage, written to be steered by a viewer's engagement.
// Every knot is a scene. Its tags are read by the controller without playing it:
//   intensity (0..1), tone, palette, duration (s), cast (comma-separated), act, interruptible,
//   cut_to (a high-stakes knot the controller may cut to when the viewer is bored here).
// Every choice is a point where the controller chooses; the calm, authored option is written first.
// Choice tags: intensity of what follows, fate_point (an irreversible change of a character's fate).
// Compile: npx inkjs-compiler -o last_broadcast.ink.json last_broadcast.ink

VAR nadia_alive = true
VAR tomas_alive = true
VAR knows_code = false

-> studio

=== studio ===
# intensity: 0.2
# tone: calm
# palette: amber
# duration: 40
# cast: Lena, Tomas
# act: 1
# interruptible
# cut_to: power_cut
Midnight at Radio Kestrel. Lena reads the weather to a sleeping town while Tomas sorts the record shelf.
+ [Read the late letters #intensity: 0.2] -> letters
+ [Take the caller on line two #intensity: 0.5] -> caller
+ [Answer the red line #intensity: 0.8] -> red_line

=== letters ===
# intensity: 0.15
# tone: warm
# palette: amber
# duration: 35
# cast: Lena, Tomas
# act: 1
# interruptible
# cut_to: power_cut
Letters from listeners: a lost dog, a birthday, a farmer asking for rain. Tomas laughs at the dog.
+ [Play a slow record #intensity: 0.1] -> record
+ [Take the caller on line two #intensity: 0.5] -> caller

=== record ===
# intensity: 0.1
# tone: calm
# palette: amber
# duration: 35
# cast: Lena
# act: 1
# interruptible
# cut_to: power_cut
A long piano record. Lena watches the rain on the window and the needle on the meter.
+ [Let it play out #intensity: 0.2] -> caller
+ [The power cuts out #intensity: 0.8] -> power_cut

=== caller ===
# intensity: 0.45
# tone: curious
# palette: teal
# duration: 35
# cast: Lena, Nadia
# act: 1
A woman called Nadia asks for a song nobody has played since the war. Her voice shakes.
+ [Play her song #intensity: 0.3] -> song
+ [Ask her why #intensity: 0.6] -> red_line

=== song ===
# intensity: 0.25
# tone: warm
# palette: teal
# duration: 35
# cast: Lena, Tomas
# act: 1
# interruptible
# cut_to: power_cut
The old song crackles out. Tomas goes quiet; his father used to hum it.
+ [Talk about the song #intensity: 0.2] -> archive
+ [The lights flicker #intensity: 0.8] -> power_cut

=== red_line ===
# intensity: 0.7
# tone: tense
# palette: crimson
# duration: 35
# cast: Lena, Nadia
# act: 1
The red line is the emergency line. Nadia again: someone is using the song as a signal, and tonight it was played.
+ [Search the archive #intensity: 0.4] -> archive
+ [Call the police #intensity: 0.7] -> police

=== archive ===
# intensity: 0.35
# tone: curious
# palette: sepia
# duration: 35
# cast: Lena, Tomas
# act: 2
# interruptible
# cut_to: intruder
In the archive, a box of tapes labelled in Tomas's father's hand. One holds a list of numbers read aloud.
+ [Catalogue the tapes #intensity: 0.3] -> tapes
+ [Play the numbers on air #intensity: 0.85] -> numbers_on_air

=== power_cut ===
# intensity: 0.85
# tone: frantic
# palette: black
# duration: 35
# cast: Lena, Tomas
# act: 2
The studio goes dark. The backup generator coughs; in the corridor, footsteps that are not Tomas's.
+ [Hide in the archive #intensity: 0.4] -> archive
+ [Follow the footsteps #intensity: 0.9] -> intruder

=== police ===
# intensity: 0.55
# tone: tense
# palette: blue
# duration: 35
# cast: Lena, Nadia
# act: 2
The desk sergeant knows the song. He asks Lena to keep Nadia on the line and to say nothing on air.
+ [Keep her talking #intensity: 0.4] -> tapes
+ [Go on air anyway #intensity: 0.85] -> numbers_on_air

=== tapes ===
# intensity: 0.3
# tone: melancholy
# palette: sepia
# duration: 35
# cast: Lena, Tomas
# act: 2
# interruptible
# cut_to: intruder
The tapes are a code book. Tomas realises his father read the numbers for forty years.
~ knows_code = true
+ [Make tea and think #intensity: 0.2] -> tea
+ [Someone is at the door #intensity: 0.9] -> intruder

=== tea ===
# intensity: 0.15
# tone: calm
# palette: amber
# duration: 35
# cast: Lena, Tomas
# act: 2
# interruptible
# cut_to: intruder
Tea in chipped mugs. Tomas talks about his father; Lena listens to the rain.
+ [Decode the list slowly #intensity: 0.3] -> decode
+ [The door handle turns #intensity: 0.9] -> intruder

=== numbers_on_air ===
# intensity: 0.8
# tone: tense
# palette: crimson
# duration: 35
# cast: Lena, Nadia
# act: 2
Lena reads the numbers on air. Across town, lights go out one by one. Nadia screams on the line.
+ [Stop reading #intensity: 0.5] -> decode
+ [Read to the end #intensity: 0.95] -> intruder

=== decode ===
# intensity: 0.4
# tone: curious
# palette: teal
# duration: 35
# cast: Lena, Tomas
# act: 2
The numbers are names, and one of them is Nadia's.
+ [Warn Nadia by phone #intensity: 0.45] -> warn
+ [Go to Nadia #intensity: 0.85] -> rooftop

=== intruder ===
# intensity: 0.9
# tone: frantic
# palette: black
# duration: 35
# cast: Lena, Tomas, Nadia
# act: 2
A man in a wet coat is in the studio. He wants the tapes, and he has Nadia with him.
+ [Hand over the tapes #intensity: 0.5] -> surrender
+ [Fight for them #intensity: 0.95 #fate_point] -> struggle

=== warn ===
# intensity: 0.45
# tone: tense
# palette: blue
# duration: 35
# cast: Lena, Nadia
# act: 3
Nadia picks up on the ninth ring. She knew; she has always known. She asks Lena to play the song once more.
+ [Play it for her #intensity: 0.3] -> last_song
+ [Tell her to run #intensity: 0.8] -> rooftop

=== surrender ===
# intensity: 0.5
# tone: melancholy
# palette: grey
# duration: 35
# cast: Lena, Tomas, Nadia
# act: 3
The man takes the tapes and leaves Nadia behind. Tomas watches his father's voice walk out of the door.
+ [Let him go #intensity: 0.3] -> dawn
+ [Broadcast his description #intensity: 0.8] -> rooftop

=== struggle ===
# intensity: 1.0
# tone: frantic
# palette: crimson
# duration: 30
# cast: Lena, Tomas, Nadia
# act: 3
Tomas throws himself at the man. A shot, loud as a dropped stylus. Tomas falls against the desk.
~ tomas_alive = false
+ [Hold Tomas #intensity: 0.6] -> vigil
+ [Chase the man to the roof #intensity: 0.95] -> rooftop

=== rooftop ===
# intensity: 0.9
# tone: frantic
# palette: storm
# duration: 35
# cast: Lena, Nadia
# act: 3
On the roof, by the mast, the rain is sideways. The man holds Nadia at the edge.
+ [Talk him down #intensity: 0.6] -> talk_down
+ [Cut the mast cable #intensity: 1.0 #fate_point] -> mast

=== talk_down ===
# intensity: 0.6
# tone: tense
# palette: storm
# duration: 35
# cast: Lena, Nadia
# act: 3
Lena reads him the numbers back, slowly, the way Tomas's father did. He lowers his hands.
-> dawn

=== mast ===
# intensity: 1.0
# tone: frantic
# palette: white
# duration: 30
# cast: Lena, Nadia
# act: 3
The cable whips free in a shower of sparks. The man is thrown back; so is Nadia.
~ nadia_alive = false
-> silence

=== vigil ===
# intensity: 0.4
# tone: melancholy
# palette: grey
# duration: 35
# cast: Lena, Tomas
# act: 3
Lena keeps Tomas talking until the ambulance comes, about records, about his father, about the rain.
-> silence

=== dawn ===
# intensity: 0.2
# tone: warm
# palette: gold
# duration: 40
# cast: Lena, Tomas, Nadia
# act: 3
# ending: dawn
Dawn over the town. {tomas_alive: Tomas cues the first record of the morning.} {nadia_alive: Nadia listens at her kitchen window.} {knows_code: The code book goes into the stove.}
-> END

=== silence ===
# intensity: 0.3
# tone: melancholy
# palette: grey
# duration: 40
# cast: Lena
# act: 3
# ending: silence
Radio Kestrel goes off the air for the first time in forty years. {not nadia_alive: Nobody requests the old song again.} {not tomas_alive: The record shelf stays unsorted.}
-> END

=== last_song ===
# intensity: 0.25
# tone: melancholy
# palette: teal
# duration: 40
# cast: Lena, Nadia
# act: 3
# ending: last_song
Lena plays the song a last time. On the line, Nadia hums along, and then the line goes quiet. In the morning her flat is empty.
-> END
