// The Cliff Road - a writer's test story for engage: 10 knots, 2 endings, a fate point,
// media cues, a speaker and title per scene, tags engage does not know (passed on to the player),
// an EXTERNAL function with an ink fallback, and two knots written with identical tags.
// Compile: npx inkjs-compiler -o cliff_road.ink.json cliff_road.ink

EXTERNAL flash_lights(times)
VAR jonah_alive = true
VAR has_map = false

-> harbour

=== harbour ===
# title: The Harbour
# speaker: Mara
# intensity: 0.2
# tone: calm
# palette: slate
# duration: 30
# cast: Mara, Jonah
# act: 1
# image: harbour_dawn.jpg fit=cover
# audio: gulls.ogg loop volume=0.4
# lighting: dawn
# camera: wide
Dawn at the harbour. Mara checks the old van while Jonah folds the map the wrong way.
+ [Take the coast road #intensity: 0.3] -> coast_road
+ [Take the cliff road #intensity: 0.7] -> cliff_road

=== coast_road ===
# title: The Coast Road
# intensity: 0.3
# tone: warm
# palette: sand
# duration: 30
# cast: Mara, Jonah
# act: 1
# interruptible
# cut_to: rockfall
# sfx: engine.wav
# sfx: waves.wav volume=0.6
The coast road winds past shuttered cafes. Jonah hums {flash_lights(2)} along to the radio.
~ has_map = true
+ [Stop for coffee #intensity: 0.2] -> cafe
+ [Push on #intensity: 0.5] -> lookout

=== cafe ===
# title: The Cafe
# intensity: 0.25
# tone: warm
# palette: sand
# duration: 30
# cast: Mara, Jonah
# act: 1
The cafe owner remembers them. Jonah laughs for the first time in days.
+ [Back on the road #intensity: 0.4] -> lookout

=== lookout ===
# intensity: 0.5
# tone: curious
# palette: slate
# duration: 30
# cast: Mara, Jonah
# act: 2
From the lookout they see the storm coming in over the water.
+ [Wait it out #intensity: 0.3] -> shelter
+ [Drive into it #intensity: 0.8] -> cliff_road

=== shelter ===
# intensity: 0.5
# tone: curious
# palette: slate
# duration: 30
# cast: Mara, Jonah
# act: 2
They shelter in a bus stop and count the seconds between thunder and light.
-> home

=== cliff_road ===
# title: The Cliff Road
# intensity: 0.75
# tone: tense
# palette: storm
# duration: 30
# cast: Mara, Jonah
# act: 2
# video: cliff_drive.mp4 muted
Rain on the cliff road. The wipers cannot keep up and the edge is very close.
+ [Slow down #intensity: 0.5] -> rockfall
+ [Floor it #intensity: 0.9] -> rockfall

=== rockfall ===
# title: Rockfall
# intensity: 0.9
# tone: frantic
# palette: storm
# duration: 25
# cast: Mara, Jonah
# act: 2
# sfx: rockfall.wav
Rocks come down across the road. The van stops a yard from the edge.
+ [Climb out carefully #intensity: 0.6] -> rescue
+ [Jonah goes for the rope #intensity: 1.0 #fate_point] -> the_fall

=== the_fall ===
# title: The Fall
# speaker: Mara
# intensity: 1.0
# tone: frantic
# palette: black
# duration: 25
# cast: Mara, Jonah
# act: 3
# sfx: wind.wav
Jonah reaches for the rope. The edge gives way. Jonah tumbles back into the dark.
~ jonah_alive = false
-> alone

=== rescue ===
# title: The Rescue
# intensity: 0.6
# tone: tense
# palette: storm
# duration: 30
# cast: Mara, Jonah
# act: 3
They climb out together and flag down a lorry with its lights on.
-> home

=== alone ===
# title: Alone
# intensity: 0.3
# tone: melancholy
# palette: grey
# duration: 30
# cast: Mara
# act: 3
# ending: alone
# audio: piano.ogg fade=3
Mara sits in the rain by the broken fence until the sirens come.
-> END

=== home ===
# title: Home
# intensity: 0.2
# tone: warm
# palette: gold
# duration: 30
# cast: Mara, Jonah
# act: 3
# ending: home
Home by nightfall. {jonah_alive: Jonah falls asleep on the sofa with the map over his face.}
-> END

=== function flash_lights(times) ===
~ return ""
