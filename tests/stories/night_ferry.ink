// The Night Ferry - the writer's journey story: a fate point every path goes through, two endings,
// the writer's tags for the player (title, speaker, media cues, tags of their own).
// Compile: npx inkjs-compiler -o night_ferry.ink.json night_ferry.ink

VAR ivo_alive = true
VAR has_ticket = false

-> dock

=== dock ===
# title: The Dock
# speaker: Mara
# intensity: 0.2
# tone: calm
# palette: harbour-blue
# duration: 30
# cast: Mara, Ivo
# act: 1
# image: dock_night.jpg fit=cover
# audio: harbour.ogg loop volume=0.5
# lighting: sodium
Mara and Ivo wait on the dock with one suitcase between them. The ferry's lights come round the point.
~ has_ticket = true
+ [Board the ferry #intensity: 0.4] -> ferry
+ [Run for the gangway #intensity: 0.7] -> ferry

=== ferry ===
# title: The Ferry
# intensity: 0.4
# tone: uneasy
# palette: steel
# duration: 30
# cast: Mara, Ivo
# act: 1
# sfx: engine_hum.wav loop
# sfx: horn.wav volume=0.8
The engines shudder. The ferry leans into the swell and the cups slide along the counter.
+ [Go up on deck #intensity: 0.7] -> deck
+ [Stay inside #intensity: 0.3] -> inside

=== inside ===
# title: Inside
# intensity: 0.3
# tone: uneasy
# palette: steel
# duration: 30
# cast: Mara, Ivo
# act: 2
The cabin smells of diesel and wet coats. The door bangs open and the wind pulls them both out on deck.
-> deck

=== deck ===
# title: On Deck
# speaker: Ivo
# intensity: 0.85
# tone: frantic
# palette: storm
# duration: 25
# cast: Mara, Ivo
# act: 2
# video: deck_storm.mp4 muted
A wave breaks over the rail. Ivo's hat goes, then his footing.
+ [Reach for Ivo #intensity: 1.0 #fate_point] -> overboard

=== overboard ===
# title: Overboard
# intensity: 1.0
# tone: frantic
# palette: black
# duration: 25
# cast: Mara, Ivo
# act: 3
# sfx: splash.wav
Mara's hand closes on nothing. Ivo falls into the black water and is gone.
~ ivo_alive = false
+ [Swim for the lights #intensity: 0.9] -> shore
+ [Hold on to the rail #intensity: 0.3] -> rescued

=== shore ===
# title: The Shore
# intensity: 0.3
# tone: melancholy
# palette: grey
# duration: 30
# cast: Mara
# act: 3
# ending: alone
Mara crawls up the shingle at dawn, alone, the suitcase long gone.
-> END

=== rescued ===
# title: Rescued
# intensity: 0.2
# tone: melancholy
# palette: dawn
# duration: 30
# cast: Mara
# act: 3
# ending: rescued
# audio: gulls.ogg fade=4
The crew wraps Mara in a blanket. She watches the water until the harbour lights come up.
-> END
