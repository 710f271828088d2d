//! In-band media between any two stacks (`spec/handshake.md` §6.2, §10.5): the body of the
//! media matrix. One cell connects a dialer of stack `D` to a listener of stack `L` over
//! loopback and, in band, adds an audio track each way (Opus tones of different frequencies),
//! a video track each way (the VP8 test pattern), removes a track, and changes a direction,
//! checking each step on the receiving side by RTP packets, the decoded tone's frequency, and
//! VP8 frames, key frames and resolution; then, on a second connection, both sides add a tone
//! at the same moment (glare). Data keeps echoing throughout.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use oneway_connection::{
    ChannelRef, Connection, ConnectionError, ConnectionEvent, TrackDirection, TrackKind,
    TrackRequest, TrackStats,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

use crate::stack::{Stack, TestListener};

/// The tone the dialer sends.
pub const DIALER_HZ: f64 = 440.0;
/// The tone the listener sends.
pub const LISTENER_HZ: f64 = 1000.0;
/// Longest one step may take (renegotiation plus enough media to judge it).
const STEP: Duration = Duration::from_secs(10);
/// How long a stopped track is watched to show that nothing more arrives.
const QUIET: Duration = Duration::from_millis(1500);
/// Audio packets a step waits for (1 s at 20 ms).
const AUDIO_PACKETS: u64 = 50;
/// Video frames a step waits for (1 s at 20 fps).
const VIDEO_FRAMES: u64 = 20;
/// How far the decoded tone may be from the sent one.
const TONE_TOLERANCE_HZ: u32 = 5;

enum Ask {
    Add(
        TrackRequest,
        oneshot::Sender<Result<String, ConnectionError>>,
    ),
    Remove(String, oneshot::Sender<Result<String, ConnectionError>>),
    Direction(
        String,
        TrackDirection,
        oneshot::Sender<Result<String, ConnectionError>>,
    ),
    Ping(Vec<u8>, oneshot::Sender<Result<(), ConnectionError>>),
    IceRestart(oneshot::Sender<Result<(), ConnectionError>>),
}

/// One end of a connection, driven by a task: echoes data when asked to, keeps the latest
/// statistics of every remote track, and carries out the test's track changes.
pub struct MediaPeer {
    asks: mpsc::UnboundedSender<Ask>,
    events: mpsc::UnboundedReceiver<ConnectionEvent>,
    /// The latest statistics of every remote track, by track id.
    pub tracks: HashMap<String, TrackStats>,
    /// Channel-0 errors the peer sent (code, reason).
    pub peer_errors: Vec<(String, String)>,
}

impl MediaPeer {
    /// Drives `conn`; with `echo`, every message is sent back on its channel.
    pub fn drive(mut conn: Connection, echo: bool) -> MediaPeer {
        let (asks, mut ask_rx) = mpsc::unbounded_channel::<Ask>();
        let (event_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut channel: Option<ChannelRef> = None;
            loop {
                tokio::select! {
                    event = conn.next_event() => {
                        let Some(event) = event else { return };
                        if let ConnectionEvent::Data { channel, data, .. } = &event
                            && echo
                        {
                            let _ = conn.send(*channel, data).await;
                        }
                        let _ = event_tx.send(event);
                    }
                    ask = ask_rx.recv() => match ask {
                        Some(Ask::Add(request, reply)) => {
                            let _ = reply.send(conn.add_track(request).await);
                        }
                        Some(Ask::Remove(track, reply)) => {
                            let _ = reply.send(conn.remove_track(&track).await);
                        }
                        Some(Ask::Direction(track, direction, reply)) => {
                            let _ = reply.send(conn.set_track_direction(&track, direction).await);
                        }
                        Some(Ask::IceRestart(reply)) => {
                            let _ = reply.send(conn.ice_restart().await);
                        }
                        Some(Ask::Ping(data, reply)) => {
                            let result = match channel {
                                Some(c) => conn.send(c, &data).await,
                                None => match conn.open_channel("data").await {
                                    Ok(c) => {
                                        channel = Some(c);
                                        conn.send(c, &data).await
                                    }
                                    Err(e) => Err(e),
                                },
                            };
                            let _ = reply.send(result);
                        }
                        None => return,
                    },
                }
            }
        });
        MediaPeer {
            asks,
            events,
            tracks: HashMap::new(),
            peer_errors: Vec::new(),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ConnectionError>>) -> Ask,
    ) -> Result<T, String> {
        let (reply, result) = oneshot::channel();
        self.asks
            .send(make(reply))
            .map_err(|_| "the peer's task ended".to_owned())?;
        timeout(STEP, result)
            .await
            .map_err(|_| format!("no answer within {STEP:?}"))?
            .map_err(|_| "the peer's task ended".to_owned())?
            .map_err(|e| e.to_string())
    }

    /// Adds a track in band; the track's id once the peer answered.
    pub async fn add(&self, request: TrackRequest) -> Result<String, String> {
        self.ask(|r| Ask::Add(request, r)).await
    }

    /// Removes a track this side added.
    pub async fn remove(&self, track: &str) -> Result<String, String> {
        let track = track.to_owned();
        self.ask(|r| Ask::Remove(track, r)).await
    }

    /// Changes a track's direction.
    pub async fn direction(
        &self,
        track: &str,
        direction: TrackDirection,
    ) -> Result<String, String> {
        let track = track.to_owned();
        self.ask(|r| Ask::Direction(track, direction, r)).await
    }

    /// Restarts ICE in band (`spec/handshake.md` §6.1).
    pub async fn ice_restart(&self) -> Result<(), String> {
        self.ask(Ask::IceRestart).await
    }

    /// The first event `pick` accepts within `limit` (every event read is recorded as by the
    /// other waits): `Ok(None)` if none came in time, `Err` if the connection ended.
    pub async fn next_matching<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&ConnectionEvent) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let deadline = Instant::now() + limit;
        while let Some(event) = self.next_event(deadline).await? {
            if let Some(t) = pick(&event) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Sends `data` on the `data` channel (opened on first use) and waits for the echo.
    pub async fn ping(&mut self, data: &[u8]) -> Result<(), String> {
        self.ask(|r| Ask::Ping(data.to_vec(), r)).await?;
        let deadline = Instant::now() + STEP;
        loop {
            match self.next_event(deadline).await? {
                Some(ConnectionEvent::Data { data: echoed, .. }) if echoed == data => return Ok(()),
                Some(_) => continue,
                None => return Err(format!("no echo within {STEP:?}")),
            }
        }
    }

    /// The next event (recording track statistics and peer errors): `Ok(None)` if none came by
    /// `deadline`, `Err` if the connection ended.
    async fn next_event(&mut self, deadline: Instant) -> Result<Option<ConnectionEvent>, String> {
        let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
            return Ok(None);
        };
        let event = event.ok_or("the connection ended")?;
        match &event {
            ConnectionEvent::MediaStats(stats) => {
                self.tracks.insert(stats.track.clone(), stats.clone());
            }
            ConnectionEvent::PeerError { code, reason } => {
                self.peer_errors.push((code.clone(), reason.clone()));
            }
            ConnectionEvent::Closed { code, reason } => {
                return Err(format!("closed: {code}: {reason}"));
            }
            _ => {}
        }
        Ok(Some(event))
    }

    /// Waits until some remote track satisfies `good`; returns its statistics.
    pub async fn wait_track(
        &mut self,
        what: &str,
        good: impl Fn(&TrackStats) -> bool,
    ) -> Result<TrackStats, String> {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(stats) = self.tracks.values().find(|s| good(s)) {
                return Ok(stats.clone());
            }
            let why = match self.next_event(deadline).await {
                Ok(Some(_)) => continue,
                Ok(None) => format!("not within {STEP:?}"),
                Err(e) => e,
            };
            let seen: Vec<String> = self.tracks.values().map(describe).collect();
            return Err(format!("{what}: {why}; tracks seen: [{}]", seen.join("; ")));
        }
    }

    /// Reads events for `QUIET` and returns the packets of `track` before and after.
    pub async fn watch(&mut self, track: &str) -> Result<(u64, u64), String> {
        let before = self.tracks.get(track).map_or(0, |s| s.packets);
        let deadline = Instant::now() + QUIET;
        while self.next_event(deadline).await?.is_some() {}
        Ok((before, self.tracks.get(track).map_or(0, |s| s.packets)))
    }
}

/// One track's statistics in a line.
pub fn describe(s: &TrackStats) -> String {
    match s.kind {
        TrackKind::Audio => format!(
            "{} audio: {} packets, {} Hz",
            s.track,
            s.packets,
            s.frequency_hz
                .map_or_else(|| "no tone".to_owned(), |f| f.to_string())
        ),
        TrackKind::Video => format!(
            "{} video: {} packets, {} frames, {} key, {}",
            s.track,
            s.packets,
            s.frames,
            s.keyframes,
            s.resolution
                .map_or_else(|| "no size".to_owned(), |(w, h)| format!("{w}x{h}"))
        ),
    }
}

fn tone_near(s: &TrackStats, hz: f64) -> bool {
    s.kind == TrackKind::Audio
        && s.packets >= AUDIO_PACKETS
        && s.frequency_hz
            .is_some_and(|f| f.abs_diff(hz.round() as u32) <= TONE_TOLERANCE_HZ)
}

fn video_ok(s: &TrackStats, frames_over: u64) -> bool {
    s.kind == TrackKind::Video
        && s.frames >= frames_over + VIDEO_FRAMES
        && s.keyframes >= 1
        && s.resolution == Some((320, 240))
}

/// What one cell measured: each column is `Ok(figures)` or `Err(why)`.
#[derive(Debug)]
pub struct MediaRow {
    /// `dialer → listener`.
    pub pair: String,
    /// The dialer's tone, decoded by the listener.
    pub audio_send: Result<String, String>,
    /// The listener's tone, decoded by the dialer.
    pub audio_receive: Result<String, String>,
    /// The dialer's video, at the listener.
    pub video_send: Result<String, String>,
    /// The listener's video, at the dialer.
    pub video_receive: Result<String, String>,
    /// The dialer removes its video track: the listener gets no more of it, data still echoes.
    pub remove: Result<String, String>,
    /// The dialer turns its audio to receive-only and back: the listener's packets stop, then
    /// resume.
    pub direction: Result<String, String>,
    /// On a fresh connection both sides add a track at the same moment (glare, §6.2: the
    /// dialer is polite): each side gets the other's tone.
    pub glare: Result<String, String>,
}

impl MediaRow {
    /// Whether every column passed.
    pub fn passed(&self) -> bool {
        self.columns().iter().all(|c| c.is_ok())
    }

    fn columns(&self) -> [&Result<String, String>; 7] {
        [
            &self.audio_send,
            &self.audio_receive,
            &self.video_send,
            &self.video_receive,
            &self.remove,
            &self.direction,
            &self.glare,
        ]
    }

    /// The Markdown header of [`MediaRow`]'s lines.
    pub fn header() -> &'static str {
        "| dialer → listener | audio send | audio receive | video send | video receive | remove | direction change | glare |\n|---|---|---|---|---|---|---|---|"
    }
}

impl fmt::Display for MediaRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "| {} |", self.pair)?;
        for column in self.columns() {
            match column {
                Ok(figures) => write!(f, " ✓ {figures} |")?,
                Err(why) => write!(f, " ✗ {why} |")?,
            }
        }
        Ok(())
    }
}

fn skipped() -> Result<String, String> {
    Err("not reached".to_owned())
}

/// Runs one cell: a dialer of `D` against a loopback listener of `L`.
pub async fn media_cell<D: Stack, L: Stack>() -> MediaRow {
    let mut row = MediaRow {
        pair: format!("{} → {}", D::NAME, L::NAME),
        audio_send: skipped(),
        audio_receive: skipped(),
        video_send: skipped(),
        video_receive: skipped(),
        remove: skipped(),
        direction: skipped(),
        glare: skipped(),
    };
    let mut listener = L::listen(None).await;
    let dialer = D::dialer(Duration::from_secs(10), false);
    let token = listener.token().clone();
    let dialed = match D::dial(&dialer, &token).await {
        Ok(c) => c,
        Err(e) => {
            row.audio_send = Err(format!("dial: {e}"));
            return row;
        }
    };
    let Ok(Some(accepted)) = timeout(STEP, listener.accept()).await else {
        row.audio_send = Err("the listener accepted nothing".to_owned());
        return row;
    };
    let mut d = MediaPeer::drive(dialed, false);
    let mut l = MediaPeer::drive(accepted, true);
    if let Err(e) = d.ping(b"before media").await {
        row.audio_send = Err(format!("data: {e}"));
        return row;
    }

    // Audio, dialer → listener (the listener answers; a sendrecv track may come back).
    let dialer_audio = match d.add(TrackRequest::tone(DIALER_HZ)).await {
        Ok(id) => id,
        Err(e) => {
            row.audio_send = Err(format!("add audio: {e}"));
            return row;
        }
    };
    row.audio_send = l
        .wait_track("the dialer's tone", |s| tone_near(s, DIALER_HZ))
        .await
        .map(|s| format!("{} pkts, {} Hz", s.packets, s.frequency_hz.unwrap_or(0)));
    let dialer_audio_at_listener = l
        .tracks
        .values()
        .find(|s| tone_near(s, DIALER_HZ))
        .map(|s| s.track.clone());

    // Audio, listener → dialer: a send-only track of the listener's own tone.
    row.audio_receive = match l
        .add(TrackRequest::tone(LISTENER_HZ).with_direction(TrackDirection::SendOnly))
        .await
    {
        Ok(_) => d
            .wait_track("the listener's tone", |s| tone_near(s, LISTENER_HZ))
            .await
            .map(|s| format!("{} pkts, {} Hz", s.packets, s.frequency_hz.unwrap_or(0))),
        Err(e) => Err(format!("add audio: {e}")),
    };

    // Video, dialer → listener, added to the running audio call.
    let dialer_video = d.add(TrackRequest::video()).await;
    row.video_send = match &dialer_video {
        Ok(_) => l
            .wait_track("the dialer's video", |s| video_ok(s, 0))
            .await
            .map(|s| video_figures(&s)),
        Err(e) => Err(format!("add video: {e}")),
    };
    let dialer_video_at_listener = l
        .tracks
        .values()
        .find(|s| video_ok(s, 0))
        .map(|s| s.track.clone());

    // Video, listener → dialer: a send-only pattern.
    let before: HashMap<String, u64> = d
        .tracks
        .iter()
        .map(|(id, s)| (id.clone(), s.frames))
        .collect();
    row.video_receive = match l
        .add(TrackRequest::video().with_direction(TrackDirection::SendOnly))
        .await
    {
        Ok(_) => d
            .wait_track("the listener's video", |s| {
                video_ok(s, before.get(&s.track).copied().unwrap_or(0))
            })
            .await
            .map(|s| video_figures(&s)),
        Err(e) => Err(format!("add video: {e}")),
    };

    // Remove the dialer's video: the listener's copy stops, data still echoes.
    row.remove = match (&dialer_video, &dialer_video_at_listener) {
        (Ok(id), Some(remote)) => match d.remove(id).await {
            Ok(_) => match stopped(&mut l, remote, "video").await {
                Ok(figures) => d.ping(b"after remove").await.map(|()| figures),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("remove: {e}")),
        },
        _ => Err("no video of the dialer to remove".to_owned()),
    };

    // The dialer's audio to receive-only (the listener's copy stops) and back (it resumes).
    row.direction = match &dialer_audio_at_listener {
        Some(remote) => match d.direction(&dialer_audio, TrackDirection::RecvOnly).await {
            Ok(_) => match stopped(&mut l, remote, "audio").await {
                Ok(stop) => match d.direction(&dialer_audio, TrackDirection::SendRecv).await {
                    Ok(_) => resumed(&mut l, remote)
                        .await
                        .map(|resume| format!("{stop}; sendrecv: {resume}")),
                    Err(e) => Err(format!("back to sendrecv: {e}")),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("to recvonly: {e}")),
        },
        None => Err("no audio of the dialer to redirect".to_owned()),
    };
    if let Err(e) = d.ping(b"after media").await {
        row.direction = Err(format!("data after media: {e}"));
    }
    row.glare = glare::<D>(&mut listener, &dialer).await;
    row
}

/// Both sides of a fresh connection add a send-only tone at once; each must hear the other's.
async fn glare<D: Stack>(
    listener: &mut impl TestListener,
    dialer: &D::Dialer,
) -> Result<String, String> {
    let token = listener.token().clone();
    let dialed = D::dial(dialer, &token)
        .await
        .map_err(|e| format!("dial: {e}"))?;
    let accepted = timeout(STEP, listener.accept())
        .await
        .ok()
        .flatten()
        .ok_or("the listener accepted nothing")?;
    let mut d = MediaPeer::drive(dialed, false);
    let mut l = MediaPeer::drive(accepted, true);
    d.ping(b"before glare").await?;
    let send_only = |hz| TrackRequest::tone(hz).with_direction(TrackDirection::SendOnly);
    let (from_dialer, from_listener) =
        tokio::join!(d.add(send_only(DIALER_HZ)), l.add(send_only(LISTENER_HZ)));
    from_dialer.map_err(|e| format!("the dialer's offer: {e}"))?;
    from_listener.map_err(|e| format!("the listener's offer: {e}"))?;
    let at_listener = l
        .wait_track("the dialer's tone", |s| tone_near(s, DIALER_HZ))
        .await?;
    let at_dialer = d
        .wait_track("the listener's tone", |s| tone_near(s, LISTENER_HZ))
        .await?;
    d.ping(b"after glare").await?;
    Ok(format!(
        "{} Hz and {} Hz heard",
        at_listener.frequency_hz.unwrap_or(0),
        at_dialer.frequency_hz.unwrap_or(0)
    ))
}

fn video_figures(s: &TrackStats) -> String {
    let (w, h) = s.resolution.unwrap_or((0, 0));
    format!(
        "{} pkts, {} frames, {} key, {w}x{h}",
        s.packets, s.frames, s.keyframes
    )
}

/// After a change that stops `remote`: waits for in-flight packets to land, then checks that
/// no more arrive over [`QUIET`].
async fn stopped(peer: &mut MediaPeer, remote: &str, kind: &str) -> Result<String, String> {
    // Packets already on the wire when the answer was applied.
    peer.watch(remote).await?;
    let (before, after) = peer.watch(remote).await?;
    if after == before {
        Ok(format!("{kind} stopped at {after} pkts"))
    } else {
        Err(format!(
            "{kind} still flowing: {before} → {after} pkts in {QUIET:?}"
        ))
    }
}

/// After a change that restarts `remote`: more packets arrive.
async fn resumed(peer: &mut MediaPeer, remote: &str) -> Result<String, String> {
    let before = peer.tracks.get(remote).map_or(0, |s| s.packets);
    let deadline = Instant::now() + STEP;
    loop {
        let now = peer.tracks.get(remote).map_or(0, |s| s.packets);
        if now >= before + AUDIO_PACKETS {
            return Ok(format!("resumed, {before} → {now} pkts"));
        }
        if Instant::now() >= deadline {
            return Err(format!("did not resume: {before} → {now} pkts"));
        }
        peer.watch(remote).await?;
    }
}
