//! Command-line arguments (clap). Parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Omsyn: offline-first, peer-to-peer sync for municipal home care.
#[derive(Debug, Parser)]
#[command(name = "omsyn", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The node's data directory [default: the platform's data directory]
    #[arg(long, global = true, env = "OMSYN_DATA", value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,

    /// Print one machine-readable JSON document on stdout
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Show ids (patients, visits, conflicts, entries) beside the names in text output
    #[arg(long, global = true)]
    pub(crate) ids: bool,

    /// The key file the store is encrypted with (64 hex digits, owner-only), when the host keeps
    /// it outside the data directory [default: DIR/store.key]
    #[arg(long, global = true, env = "OMSYN_STORE_KEY_FILE", value_name = "FILE")]
    pub(crate) store_key_file: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create this node's identity (key, role, whom it serves)
    Init(InitArgs),
    /// Verify the store: every page checksum and every document (reads the whole file)
    Check {
        /// Rebuild documents damaged by concurrent writes (this node's own colliding changes are
        /// made again; every entry is kept and the repair is logged)
        #[arg(long)]
        repair: bool,
    },
    /// Measure performance against baselines in the same run (see BENCHMARKS.md)
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Internal: the child process of `omsyn bench store`
    #[command(hide = true)]
    BenchOpen {
        /// omsyn or raw
        #[arg(long)]
        mode: String,
        /// The data directory to open
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to stdout
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `omsyn man | man -l -`
    Man,
    /// Run the demo: a small zone lives through a day on eight real nodes
    Demo {
        /// Keep the nodes' data directories here (must be empty) instead of a temporary directory
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Run a relay server for nodes that cannot reach each other directly
    Relay {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0:3340")]
        listen: std::net::SocketAddr,
        /// TLS certificate chain (PEM); with --tls-key, serves HTTPS
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM)
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    #[command(flatten)]
    Node(NodeCommand),
}

/// Commands that run against an initialised node's documents.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Show this node's id, role and store statistics
    Id,
    /// Register and list patients, edit their record
    #[command(subcommand)]
    Patient(PatientCmd),
    /// Show everything this node holds about a patient
    Show {
        /// The patient
        #[arg(long)]
        patient: String,
    },
    /// Care plan: add a tiltak (measure) with its timing
    #[command(subcommand)]
    Plan(PlanCmd),
    /// Visits: plan, move, assign, cancel, document
    #[command(subcommand)]
    Visit(VisitCmd),
    /// Free-text journal notes and their corrections
    #[command(subcommand)]
    Note(NoteCmd),
    /// Medication list and doses given or not given
    #[command(subcommand)]
    Med(MedCmd),
    /// Record an observation (vital sign)
    Observe(ObserveArgs),
    /// Messages about a patient between home, nurses and base
    #[command(subcommand)]
    Message(MessageCmd),
    /// This staff member's day log: shift, visit times, travel, deviations
    #[command(subcommand)]
    Daylog(DaylogCmd),
    /// List open safety conflicts, or resolve one
    Conflicts(ConflictsArgs),
    /// Escalation tasks (device alerts, calls to make again, physical visits): list, claim, complete
    Tasks(TasksArgs),
    /// What this node knows of a day: planned, done, missed, digital vs physical, conflicts
    DayReport {
        /// The day [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Only this zone's patients (by the zone in their record) and devices
        #[arg(long)]
        zone: Option<String>,
        /// One CSV row per visit (semicolon-separated, header first) instead of the summary
        #[arg(long)]
        csv: bool,
    },
    /// Serve this node: sync continuously with configured and discovered peers
    Run {
        #[command(flatten)]
        net: NetArgs,
        /// A peer to keep in sync with (its ticket), repeatable
        #[arg(long = "peer", value_name = "TICKET")]
        peers: Vec<String>,
        /// Serve the coordinator's dashboard and its JSON API on this address (loopback unless
        /// --http-public); the URL to open, with its session token, is printed at start
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Allow --http on an address other than loopback (the token still guards every request)
        #[arg(long, requires = "http")]
        http_public: bool,
    },
    /// Sync once with one peer, print a summary, and exit
    Sync {
        #[command(flatten)]
        net: NetArgs,
        /// The peer's ticket
        #[arg(long, value_name = "TICKET")]
        peer: String,
        /// Print progress on stderr while data arrives [default: when stderr is a terminal]
        #[arg(long)]
        progress: bool,
        /// Give up when the peer sends nothing for this many seconds (it stalled)
        #[arg(long, value_name = "SECONDS", default_value_t = 120,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        idle_timeout: u64,
    },
    /// Print this node's ticket, the line (or QR code) a peer needs to reach it: from `omsyn
    /// run` while it serves this data directory (its addresses as of now), else what `omsyn run`
    /// with the same --listen and --relay will advertise
    Ticket {
        /// The address `omsyn run --listen` is given (its port is in the ticket)
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The relay `omsyn run --relay` is given
        #[arg(long)]
        relay: Option<String>,
    },
    /// Peers seen and when, and how fresh each patient's documents are towards each peer
    Status,
    /// The organisation: create it on the admin base, show members and revocations
    #[command(subcommand)]
    Org(OrgCmd),
    /// Enrol a device: request on the device, approve at the base, install on the device
    #[command(subcommand)]
    Enroll(EnrollCmd),
    /// Revoke a device (by node id, at a base holding the organisation key), or install a
    /// revocation received as text or file; revocations spread to every node ahead of data
    Revoke {
        /// A node id to revoke, or a revocation (`omsyn-revoke1:…`, or a file holding one)
        target: String,
        /// Why (lost phone, left the organisation); required when revoking by node id
        #[arg(long)]
        reason: Option<String>,
        /// Also write the revocation to this file, to carry to offline nodes
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Explicit ("break-glass") access to a patient not on your list, and its review at the base
    #[command(subcommand)]
    Access(AccessCmd),
    /// The staff a base plans with: enrolled devices, imported work lists, and staff added here
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Add staff to, or remove them from, a patient's care team (base)
    Team {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Staff id to add
        #[arg(long, conflicts_with = "remove")]
        add: Option<String>,
        /// Staff id to remove
        #[arg(long)]
        remove: Option<String>,
    },
    /// Register a patient's block (sperring) of a staff member; it beats every other access (base)
    Block {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The blocked staff member
        #[arg(long)]
        staff: String,
    },
    /// Lift a block (base)
    Unblock {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The block's id (from `omsyn show`)
        #[arg(long)]
        block: String,
    },
    /// Remove from this device the documents of patients it no longer needs (once a base has them)
    Purge,
    /// The access log: who read, wrote or exported a patient's data, when and why
    Audit {
        /// Only this patient's entries (what the patient may see)
        #[arg(long)]
        patient: Option<String>,
        #[command(subcommand)]
        action: Option<AuditCmd>,
    },
    /// Write this node's documents to a portable file ("-" or nothing: stdout)
    Export {
        /// Output file
        #[arg(conflicts_with = "fhir")]
        file: Option<PathBuf>,
        /// Only this patient's documents
        #[arg(long)]
        patient: Option<String>,
        /// Write FHIR R4 JSON instead: one Bundle per patient (`DIR/<patient>.json`), for the
        /// municipality's record system
        #[arg(long, value_name = "DIR")]
        fhir: Option<PathBuf>,
    },
    /// Import a record system's CSV work list into the plan (all or nothing)
    ImportWorklist {
        /// The CSV file (semicolon-separated, header first)
        file: PathBuf,
        /// A fixed UTC offset for every row's local times (+HH:MM), overriding the node's zone
        /// (OMSYN_TZ, default Europe/Oslo: +01:00 in winter, +02:00 in summer)
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<String>,
    },
    /// Merge an export file into this node (all or nothing)
    Import {
        /// The export file
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Base,
    Nurse,
    HomeUnit,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// What this node is
    #[arg(long, value_enum)]
    pub(crate) role: RoleArg,
    /// The nurse's name, the base office, or the home
    #[arg(long)]
    pub(crate) name: String,
    /// Staff id (HPR or employee number) of the staff member this node serves
    #[arg(long)]
    pub(crate) staff_id: Option<String>,
    /// For a home unit: the patient it serves
    #[arg(long)]
    pub(crate) patient: Option<String>,
    /// Zone or team
    #[arg(long)]
    pub(crate) zone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PatientCmd {
    /// Register a patient; prints the new id
    Add(PatientFields),
    /// List the patients this node holds
    List,
    /// Set one field of a patient's record
    Set {
        /// The patient
        #[arg(long)]
        patient: String,
        /// name, national-id, address, access-note, phone, zone, gp or location (LAT,LON)
        #[arg(long)]
        field: String,
        /// The new value
        #[arg(long)]
        value: String,
    },
    /// Add a flag (fall-risk, key-at-neighbour, two-staff...)
    Flag {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The flag's kind
        #[arg(long)]
        kind: String,
        /// Detail
        #[arg(long)]
        note: Option<String>,
    },
    /// Deactivate a flag (it stays in the record)
    Unflag {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The flag id
        #[arg(long)]
        flag: String,
        /// Why
        #[arg(long)]
        reason: String,
    },
    /// Add a contact person
    Contact {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Contact's name
        #[arg(long)]
        name: String,
        /// Relation (datter, nabo, fastlege...)
        #[arg(long)]
        relation: String,
        /// Phone
        #[arg(long)]
        phone: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PatientFields {
    /// Full name
    #[arg(long)]
    pub(crate) name: String,
    /// Fødselsnummer or D-nummer
    #[arg(long)]
    pub(crate) national_id: Option<String>,
    /// Address
    #[arg(long)]
    pub(crate) address: Option<String>,
    /// How to get in (key box, key at neighbour...)
    #[arg(long)]
    pub(crate) access_note: Option<String>,
    /// Phone
    #[arg(long)]
    pub(crate) phone: Option<String>,
    /// Zone or team
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// General practitioner
    #[arg(long)]
    pub(crate) gp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PlanCmd {
    /// Add a tiltak to a patient's care plan
    Add {
        /// The patient
        #[arg(long)]
        patient: String,
        /// What to do
        #[arg(long)]
        description: String,
        /// Code from the record system (MED, SAAR...)
        #[arg(long)]
        code: Option<String>,
        /// Time of day (HH:MM), repeatable
        #[arg(long = "time", value_name = "HH:MM")]
        times: Vec<String>,
        /// Weekdays 1-7 (Monday=1), comma-separated [default: every day]
        #[arg(long, value_delimiter = ',')]
        weekdays: Vec<u8>,
        /// The vedtak (decision) it implements
        #[arg(long)]
        vedtak: Option<String>,
        /// Practical help, not health care (no journal duty)
        #[arg(long)]
        practical_help: bool,
        /// Needs an authorised nurse
        #[arg(long)]
        requires_nurse: bool,
        /// Needs two staff at once (dobbeltbemanning)
        #[arg(long)]
        double_staffed: bool,
    },
    /// Suggest who visits whom and in which order on a day (a diff of the plan as it stands);
    /// --accept writes it
    Suggest(Box<SuggestArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct SuggestArgs {
    /// The day [default: today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: Option<String>,
    /// Only this zone's patients and staff
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// Shift list: staff_id;start;end[;competence;name;zone] (HH:MM), header first [default:
    /// the enrolled staff of the zone, with their day logs' shift start and end]
    #[arg(long, value_name = "FILE")]
    pub(crate) shifts: Option<PathBuf>,
    /// The shift of enrolled staff without a day log
    #[arg(long, value_name = "HH:MM-HH:MM", default_value = "07:00-15:00")]
    pub(crate) shift: String,
    /// What matters most, in order: continuity, travel, balance, changes (comma-separated; the
    /// rest follow in this order)
    #[arg(
        long,
        value_name = "LIST",
        default_value = "continuity,travel,balance,changes"
    )]
    pub(crate) priorities: String,
    /// Travel speed over straight-line distance, km/h
    #[arg(long, value_name = "KMH", default_value_t = omsyn_core::planning::DEFAULT_SPEED_KMH)]
    pub(crate) speed: f64,
    /// Minutes a visit may start before or after its planned time
    #[arg(long, value_name = "MINUTES", default_value_t = omsyn_core::planning::DEFAULT_TOLERANCE_MIN)]
    pub(crate) tolerance: u32,
    /// Road travel times between homes: from;to;minutes (patient ids), header first
    #[arg(long, value_name = "FILE")]
    pub(crate) road_matrix: Option<PathBuf>,
    /// The solver's search effort
    #[arg(long, default_value_t = omsyn_core::planning::DEFAULT_GENERATIONS)]
    pub(crate) generations: u32,
    /// Seed for the solver's random choices
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Use the greedy planner instead of the solver (instant; the baseline)
    #[arg(long)]
    pub(crate) greedy: bool,
    /// Replan around a staff member who called in sick (from --from)
    #[arg(long, value_name = "STAFF", conflicts_with = "overrun")]
    pub(crate) sick: Option<String>,
    /// When the sick staff member stops (HH:MM on --date, or RFC 3339) [default: now]
    #[arg(long, requires = "sick")]
    pub(crate) from: Option<String>,
    /// Replan around a visit that runs long (by --minutes)
    #[arg(long, value_name = "VISIT", requires = "minutes")]
    pub(crate) overrun: Option<String>,
    /// How many minutes the visit runs long
    #[arg(long, requires = "overrun")]
    pub(crate) minutes: Option<u32>,
    /// Accept every move: write them as visit-plan changes (signed and synced) and log it
    #[arg(long)]
    pub(crate) accept: bool,
    /// Also print every staff member's route, stop by stop
    #[arg(long)]
    pub(crate) routes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    Physical,
    Digital,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MissedArg {
    NoAnswer,
    Declined,
    NotHome,
    Other,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VisitCmd {
    /// Plan a visit; prints the new id
    Plan {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Window start (RFC 3339)
        #[arg(long)]
        start: String,
        /// Window end (RFC 3339)
        #[arg(long)]
        end: String,
        /// physical or digital (video)
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Assigned staff id, repeatable (two for dobbeltbemanning)
        #[arg(long)]
        staff: Vec<String>,
        /// Tiltak served, repeatable
        #[arg(long)]
        tiltak: Vec<String>,
    },
    /// List visits on a day
    List {
        /// The day [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Move a visit's time window
    Move {
        /// The visit
        #[arg(long)]
        visit: String,
        /// New start
        #[arg(long)]
        start: String,
        /// New end
        #[arg(long)]
        end: String,
    },
    /// Assign (or with no --staff, unassign) a visit
    Assign {
        /// The visit
        #[arg(long)]
        visit: String,
        /// Staff id, repeatable
        #[arg(long)]
        staff: Vec<String>,
    },
    /// Cancel a visit with a reason
    Cancel {
        /// The visit
        #[arg(long)]
        visit: String,
        /// Why (admitted to hospital, declined...)
        #[arg(long)]
        reason: String,
    },
    /// Document a visit as performed
    Done {
        /// The visit
        #[arg(long)]
        visit: String,
        /// Arrival [default: now]
        #[arg(long)]
        arrival: Option<String>,
        /// Departure
        #[arg(long)]
        departure: Option<String>,
        /// How it was actually done [default: as planned]
        #[arg(long, value_enum)]
        mode: Option<KindArg>,
    },
    /// Document a visit as not performed
    Missed {
        /// The visit
        #[arg(long)]
        visit: String,
        /// Why
        #[arg(long, value_enum)]
        reason: MissedArg,
        /// Detail
        #[arg(long)]
        note: Option<String>,
        /// When [default: now]
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NoteCmd {
    /// Add a note
    Add {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The visit it belongs to
        #[arg(long)]
        visit: Option<String>,
        /// The note
        #[arg(long)]
        text: String,
        /// When the noted event happened [default: now]
        #[arg(long)]
        at: Option<String>,
    },
    /// Correct an entry, or mark it entered in error; the original stays readable
    Correct {
        /// The patient
        #[arg(long)]
        patient: String,
        /// The entry to correct
        #[arg(long)]
        entry: String,
        /// Corrected text
        #[arg(
            long,
            conflicts_with = "entered_in_error",
            required_unless_present = "entered_in_error"
        )]
        text: Option<String>,
        /// Mark as entered in error, with the reason
        #[arg(long, value_name = "REASON")]
        entered_in_error: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MedCmd {
    /// Add a medication with its dose slots
    Add {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Name and strength
        #[arg(long)]
        name: String,
        /// Dose per slot
        #[arg(long)]
        dose: String,
        /// Slot time (HH:MM), repeatable
        #[arg(long = "slot", value_name = "HH:MM", required = true)]
        slots: Vec<String>,
    },
    /// Record a dose as given
    Give(DoseArgs),
    /// Record a dose as not given, with the reason
    NotGiven {
        #[command(flatten)]
        dose: DoseArgs,
        /// Why
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DoseArgs {
    /// The patient
    #[arg(long)]
    pub(crate) patient: String,
    /// The dose slot: MEDICATION@HH:MM, the medication by its name or id (see `omsyn show`)
    #[arg(long)]
    pub(crate) slot: String,
    /// The visit
    #[arg(long)]
    pub(crate) visit: Option<String>,
    /// When [default: now]; its date is the dose's day
    #[arg(long)]
    pub(crate) at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ObserveArgs {
    /// The patient
    #[arg(long)]
    pub(crate) patient: String,
    /// What was measured (blood-pressure, pulse, spo2, temperature, weight, glucose...)
    #[arg(long)]
    pub(crate) kind: String,
    /// The value
    #[arg(long)]
    pub(crate) value: String,
    /// The unit
    #[arg(long)]
    pub(crate) unit: Option<String>,
    /// The visit
    #[arg(long)]
    pub(crate) visit: Option<String>,
    /// When [default: now]
    #[arg(long)]
    pub(crate) at: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RecipientArg {
    Home,
    CareTeam,
    Base,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MessageCmd {
    /// Send a message about a patient
    Send {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Recipient
        #[arg(long, value_enum)]
        to: RecipientArg,
        /// Text (may be left out when a picture is attached)
        #[arg(long, default_value = "")]
        text: String,
        /// The message this answers
        #[arg(long)]
        reply_to: Option<String>,
        /// Attach a picture (JPEG, PNG or WebP, at most 512 KiB; up to 4)
        #[arg(long, value_name = "FILE")]
        picture: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DaylogCmd {
    /// Shift started
    ShiftStart(AtArg),
    /// Shift ended
    ShiftEnd(AtArg),
    /// Started work on a visit
    VisitStart {
        /// The visit
        #[arg(long)]
        visit: String,
        #[command(flatten)]
        at: AtArg,
    },
    /// Finished work on a visit
    VisitEnd {
        /// The visit
        #[arg(long)]
        visit: String,
        #[command(flatten)]
        at: AtArg,
    },
    /// Travel between visits
    Travel {
        /// Minutes
        #[arg(long)]
        minutes: u32,
        /// Kilometres
        #[arg(long)]
        km: Option<f64>,
        #[command(flatten)]
        at: AtArg,
    },
    /// An operational deviation (avvik) with no patient data
    Deviation {
        /// What happened
        #[arg(long)]
        text: String,
        #[command(flatten)]
        at: AtArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AtArg {
    /// When [default: now]
    #[arg(long)]
    pub(crate) at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ConflictsArgs {
    /// Only this patient's conflicts
    #[arg(long)]
    pub(crate) patient: Option<String>,
    #[command(subcommand)]
    pub(crate) action: Option<ConflictAction>,
}

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Every task this node derives (others' and completed ones too), not only this node's open ones
    #[arg(long)]
    pub(crate) all: bool,
    /// Only this patient's tasks
    #[arg(long)]
    pub(crate) patient: Option<String>,
    #[command(subcommand)]
    pub(crate) action: Option<TaskAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskAction {
    /// Take a task ("I take it"); also stops it escalating to the base
    Claim {
        /// The task id (o-…)
        task: String,
    },
    /// Complete a task, saying what was done
    Done {
        /// The task id (o-…)
        task: String,
        /// What was found and done
        #[arg(long)]
        note: String,
    },
    /// Show this node's escalation waits, or set the ones given
    Policy {
        /// Minutes an alarm may stay unclaimed before it reaches the base
        #[arg(long, value_name = "MINUTES")]
        alarm_ack: Option<u32>,
        /// Minutes any other alert or an overdue call may stay unclaimed before it reaches the base
        #[arg(long, value_name = "MINUTES")]
        alert_ack: Option<u32>,
        /// Minutes between an unanswered video call and the next try
        #[arg(long, value_name = "MINUTES")]
        call_retry: Option<u32>,
        /// Unanswered calls after which a video visit becomes a physical visit for the zone
        #[arg(long, value_name = "N")]
        call_attempts: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConflictAction {
    /// Resolve a conflict with an attributable entry
    Resolve {
        /// The conflict id
        #[arg(long)]
        conflict: String,
        /// What was found and done
        #[arg(long)]
        note: String,
        /// For a record-field conflict: the value to keep
        #[arg(long)]
        value: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Patients in the generated month of base data
    #[arg(long, default_value_t = 2000)]
    pub(crate) patients: usize,
    /// Days of data to generate
    #[arg(long, default_value_t = 30)]
    pub(crate) days: u32,
    /// Visits a day across all patients
    #[arg(long, default_value_t = 2500)]
    pub(crate) visits_per_day: usize,
    /// Journal writes to time in the write benchmark
    #[arg(long, default_value_t = 300)]
    pub(crate) writes: usize,
    /// Zones the generated patients are spread over (the bench's base serves the first: with 1,
    /// its day report holds the whole day)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) zones: u32,
    /// Directory for the generated store (kept afterwards) [default: a temporary directory]
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// `bench store`: only where the bytes of the month in --dir are, as they are and after
    /// compaction (generated first if --dir is empty; a store of an older format is migrated
    /// when it opens)
    #[arg(long, requires = "dir")]
    pub(crate) bytes_only: bool,
    /// `bench store`: only what each table a note's commit changes costs: raw redb commits of
    /// one chunk with a document's bookkeeping rows in one, two or three tables, or beside the
    /// chunk (format 10), in a store of this many documents (--writes commits each, interleaved)
    #[arg(long, value_name = "DOCUMENTS", conflicts_with = "bytes_only")]
    pub(crate) table_pricing: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchPlanArgs {
    /// A generated work list (gen_worklist.py --coords), repeatable: one day, a week...
    #[arg(long, value_name = "FILE")]
    pub(crate) worklist: Vec<PathBuf>,
    /// The solver's search effort
    #[arg(long, default_value_t = omsyn_core::planning::DEFAULT_GENERATIONS)]
    pub(crate) generations: u32,
    /// Seed for the solver (and the store's ids)
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

#[derive(Debug, Args)]
pub(crate) struct NetArgs {
    /// UDP address to listen on [default: all interfaces, a free port]
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Relay server URL (e.g. from `omsyn relay`)
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// Do not discover peers on the local network
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Use only the relay, no direct connections
    #[arg(long, requires = "relay")]
    pub(crate) relay_only: bool,
    /// CA certificate (PEM) that signed an HTTPS relay's certificate, for a private relay
    #[arg(long, requires = "relay", value_name = "PEM")]
    pub(crate) relay_ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrgCmd {
    /// Create the organisation key on this base (owner-only file) and enrol this base in it
    Create {
        /// The organisation's name (the municipality's home-care service)
        #[arg(long)]
        name: String,
        /// Validity of this base's own certificate, in hours
        #[arg(long, default_value_t = 24 * 365)]
        valid_hours: u32,
        /// How long an explicit ("break-glass") access lasts at most, in hours (default 12, at
        /// most a week); every certificate the organisation issues carries it
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=168))]
        explicit_access_hours: Option<u32>,
    },
    /// The organisation, this node's certificate, known members and revocations
    Show,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnrollCmd {
    /// On the device: print an enrolment request (text for a QR code or chat, or --out FILE)
    Request {
        /// Also write it to this file
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// At a base holding the organisation key: approve a request, print the certificate
    Approve {
        /// The request (`omsyn-enroll1:…`, or a file holding one)
        request: String,
        /// How long the certificate lasts before it must be renewed at a base, in hours (a
        /// shift plus a margin); renewed automatically while the device syncs with a base
        #[arg(long, default_value_t = 16)]
        valid_hours: u32,
        /// The staff member's competence (sykepleier, helsefagarbeider, assistent...), shown to
        /// the coordinator when assigning visits
        #[arg(long)]
        competence: Option<String>,
        /// Also write the certificate to this file
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// On the device: install the certificate the base issued
    Install {
        /// The certificate (`omsyn-cert1:…`, or a file holding one)
        certificate: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCmd {
    /// Ask explicit access to a patient, with the reason; logged and flagged for review
    Ask {
        /// The patient
        #[arg(long)]
        patient: String,
        /// Why (beslutningsmal and free text)
        #[arg(long)]
        reason: String,
    },
    /// Explicit accesses recorded in the records this node holds (review at the base)
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StaffCmd {
    /// Register a staff member whose phone is not enrolled yet, as a work list would name her
    Add {
        /// Staff id (HPR or employee number)
        #[arg(long)]
        id: String,
        /// Name
        #[arg(long)]
        name: String,
        /// Role or competence (`sykepleier`, `helsefagarbeider`...)
        #[arg(long)]
        role: Option<String>,
        /// Zone
        #[arg(long)]
        zone: Option<String>,
    },
    /// The staff this node knows, by name
    List {
        /// Only this zone's
        #[arg(long)]
        zone: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Check every node's access-log chain held here: gaps, altered or forged entries
    Verify,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Durable writes against raw redb commits; opening a month of one base's data
    Store(BenchArgs),
    /// The day report over a month of a mid-size municipality, against only reading its documents
    Report(BenchArgs),
    /// The planning assistant on generated work lists against the list's own assignment and a
    /// greedy planner
    Plan(BenchPlanArgs),
    /// Collection sync against per-document Automerge sync and the bytes of the changes
    Sync {
        /// Sizes to measure, in documents both sides hold (up to 2,000 a nurse's phone and a
        /// base, above two bases)
        #[arg(long, value_delimiter = ',', default_values_t = [2000, 10000, 50000])]
        docs: Vec<usize>,
        /// Reconnects measured at each size (median and min–max are reported)
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Percent of documents changed on each side before each reconnect
        #[arg(long, default_value_t = 1.0)]
        percent: f64,
    },
    /// A UDP proxy that behaves like a bad link (delay, loss, duplication, reordering, a rate
    /// limit): a peer dials --listen and reaches --to. Standard input takes `down`, `up` and
    /// `stats`; the proxy ends when it closes
    Link(LinkArgs),
    /// Omsyn on rural links, as in the field: real nodes in network namespaces (root), the bad
    /// link between phone and home, the base through a relay; beside the per-document Automerge
    /// baseline over the same link and the bytes of the changes
    Field(FieldArgs),
    /// Internal: one side of the per-document baseline, for `bench field`
    #[command(hide = true)]
    Baseline(BaselineArgs),
    /// Internal: one side of copying a store file over one QUIC stream, for `bench field`
    #[command(hide = true)]
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FieldArgs {
    /// Which scenario: shift, first, all (these two), or base (a new base takes a month from a
    /// peer base, against copying the store file)
    #[arg(long, default_value = "all")]
    pub(crate) scenario: String,
    /// Notes in the shift (besides a visit and a dose)
    #[arg(long, default_value_t = 60)]
    pub(crate) notes: usize,
    /// One-way delay of the shift's link
    #[arg(long, default_value_t = 150)]
    pub(crate) delay_ms: u64,
    /// Loss each way on the shift's link
    #[arg(long, default_value_t = 0.1)]
    pub(crate) loss: f64,
    /// Rate of the shift's link, kbit/s
    #[arg(long, default_value_t = 384)]
    pub(crate) rate_kbit: u64,
    /// Patients of the new phone's caseload (first sync; over 1 Mbit/s, 150 ms round trip)
    #[arg(long, default_value_t = 20)]
    pub(crate) phone_patients: usize,
    /// Seed of the link's losses and of the generated data
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// A month of base data generated before (`omsyn bench store --dir DIR --zones 1` or
    /// `bench report --dir DIR --zones 1`) for the new base's first sync: copied, never changed
    /// [default: generated for the run, which takes minutes]
    #[arg(long, value_name = "DIR")]
    pub(crate) month: Option<PathBuf>,
    /// Patients of the month generated when no --month is given (the M tier: 2,000)
    #[arg(long, default_value_t = 2000)]
    pub(crate) base_patients: usize,
    /// Rates of the new base's link, kbit/s: the first sync and the copy are measured at each
    #[arg(long, value_delimiter = ',', default_values_t = [20_000, 100_000])]
    pub(crate) base_rates: Vec<u64>,
    /// One-way delay of the new base's link
    #[arg(long, default_value_t = 20)]
    pub(crate) base_delay_ms: u64,
    /// Print the shift's timeline on stderr: every line the phone, the home unit and the link
    /// logged from the start of `omsyn sync`, with milliseconds since then (`OMSYN_FIELD_LOG`
    /// adds tracing directives to the nodes' filters)
    #[arg(long)]
    pub(crate) timeline: bool,
    /// The shift with the phone's app running all day (`omsyn run` on the phone; the morning's
    /// sync, the shift's entries and the evening's sync forwarded to it), as a nurse's phone has
    /// it: its evening sync holds a TLS ticket of the home unit from the morning and sends its
    /// push with the handshake (0-RTT). Without it each sync is an `omsyn sync` process of its own
    #[arg(long)]
    pub(crate) app: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// Serve this file (one copy)
    #[arg(long, requires = "listen")]
    pub(crate) file: Option<PathBuf>,
    /// Address to serve on
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Dial the serving side (`ID@ADDR`)
    #[arg(long, requires = "out", conflicts_with = "file")]
    pub(crate) peer: Option<String>,
    /// Where the copy goes
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// DEFLATE each 1 MiB block on the way (both sides must say so)
    #[arg(long)]
    pub(crate) compress: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// The store
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Saved per-document sync states
    #[arg(long)]
    pub(crate) states: PathBuf,
    /// The documents to sync, one id a line
    #[arg(long)]
    pub(crate) docs: PathBuf,
    /// Serve one session here
    #[arg(long, conflicts_with = "peer")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Dial the serving side (`ID@ADDR`)
    #[arg(long)]
    pub(crate) peer: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// Address peers dial
    #[arg(long)]
    pub(crate) listen: std::net::SocketAddr,
    /// Address datagrams go on to (the node behind the link)
    #[arg(long)]
    pub(crate) to: std::net::SocketAddr,
    /// One-way delay, each direction
    #[arg(long, default_value_t = 0)]
    pub(crate) delay_ms: u64,
    /// Probability that a datagram is lost, each direction
    #[arg(long, default_value_t = 0.0)]
    pub(crate) loss: f64,
    /// Probability that a datagram arrives twice
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duplicate: f64,
    /// Probability that a datagram is overtaken by later ones
    #[arg(long, default_value_t = 0.0)]
    pub(crate) reorder: f64,
    /// Link rate in kbit/s, each direction (0: unlimited)
    #[arg(long, default_value_t = 0)]
    pub(crate) rate_kbit: u64,
    /// Longest a datagram queues for the link before it is dropped
    #[arg(long, default_value_t = 500)]
    pub(crate) queue_ms: u64,
    /// Seed of the random decisions (the same seed, the same decisions for the same datagrams)
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}
