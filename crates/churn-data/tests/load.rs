//! The loader against hand-written tables: every contract rule once, with the
//! exact reject expected, and the file-level errors.

use std::path::Path;

use churn_core::{Table, parse_timestamp};
use churn_data::{DataError, LoadOptions, load_dir};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

fn now() -> LoadOptions {
    LoadOptions {
        now: parse_timestamp("2026-06-01T00:00:00Z").expect("valid"),
    }
}

const LEARNERS: &str = "\
learner_id,signup_at,plan,acquisition_channel,device
L1,2026-01-10T08:00:00Z,free,organic,web
L2,2026-01-11T09:30:00Z,annual,referral,
L1,2026-01-12T08:00:00Z,free,organic,web
L3,2026-01-13T08:00:00Z,  ,organic,web
L4,not a date,free,organic,web
L5,2027-01-01T00:00:00Z,free,organic,web
L6,2026-01-14T08:00:00Z,monthly,,ios
";

const COURSES: &str = "\
course_id,level,lessons
C1,beginner,10
C2, ,12
C3,advanced,0
C1,advanced,5
C4,intermediate,2.5
";

const EVENTS: &str = "\
learner_id,ts,event_type,course_id,duration_s,score,amount,latency_ms,stalls
L1,2026-01-10T09:00:00Z,login,,,,,,
L1,2026-01-10T09:05:00Z,video_watch,C1,600,,,,
L2,2026-01-12T10:00:00Z,quiz_attempt,C1,,0.8,,,
L9,2026-01-12T10:00:00Z,login,,,,,,
L1,2026-01-12T10:00:00Z,video_watch,C7,300,,,,
L1,2026-01-12T10:00:00Z,Clicks!,,,,,,
L1,yesterday,login,,,,,,
L1,2026-07-01T00:00:00Z,login,,,,,,
L1,2026-01-09T00:00:00Z,login,,,,,,
L1,2026-01-12T10:00:00Z,video_watch,C1,-5,,,,
L1,2026-01-12T10:00:00Z,quiz_attempt,C1,,1.5,,,
L2,2026-01-12T10:00:00Z,payment,,,,-29,,
L2,2026-01-12T10:00:00Z,live_class,C1,1800,,,-3,0
L2,2026-01-12T10:00:00Z,live_class,C1,1800,,,120,-1
L3,2026-01-12T10:00:00Z,login,,,,,,
L2,2026-01-12T10:00:00Z,video_watch,C2,60,,,,
L2,2026-01-12T10:00:00Z,video_watch,C1,abc,,,,
L2,2026-01-12T10:00:00Z,live_class,C1,1800,,,150,1.5
L2,2026-01-12T10:00:00Z,video_watch,C1,NaN,,,,
";

const ASSIGNMENTS: &str = "\
experiment_id,learner_id,arm,assigned_at,propensity,churned
E1,L1,control,2026-02-01T00:00:00Z,0.5,0
E1,L2,coupon,2026-02-01T00:00:00Z,0.5,1
E1,L1,coupon,2026-02-01T00:00:00Z,0.5,
E1,L9,coupon,2026-02-01T00:00:00Z,0.5,
E2,L1,coupon,2026-02-01T00:00:00Z,0,
E2,L2,coupon,2026-02-01T00:00:00Z,1.2,
E3,L1,,2026-02-01T00:00:00Z,0.5,
E3,L2,control,2026-02-01T00:00:00Z,0.5,2
";

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "learners.csv", LEARNERS);
    write(dir.path(), "courses.csv", COURSES);
    write(dir.path(), "events.csv", EVENTS);
    write(dir.path(), "assignments.csv", ASSIGNMENTS);
    dir
}

/// (row, field, reason) of every reject of a table.
fn rejects(loaded: &churn_data::Loaded, table: Table) -> Vec<(usize, String, String)> {
    let report = loaded.report.table(table).expect("table present");
    assert!(
        report.reconciles(),
        "{table}: read {} != accepted {} + rejected {}",
        report.read,
        report.accepted,
        report.rejects.len()
    );
    report
        .rejects
        .iter()
        .map(|r| (r.row, r.field.clone(), r.reason.clone()))
        .collect()
}

fn row(row: usize, field: &str, reason: &str) -> (usize, String, String) {
    (row, field.to_owned(), reason.to_owned())
}

#[test]
fn every_rule_rejects_its_row_with_the_reason() {
    let dir = fixture();
    let loaded = load_dir(dir.path(), &now()).expect("loads");

    assert_eq!(
        rejects(&loaded, Table::Learners),
        vec![
            row(
                3,
                "learner_id",
                "duplicate learner_id \"L1\" (first at row 1)"
            ),
            row(4, "plan", "plan is empty"),
            row(
                5,
                "signup_at",
                "signup_at: unparsable timestamp \"not a date\" (expected RFC 3339, e.g. 2026-01-31T08:00:00Z)"
            ),
            row(
                6,
                "signup_at",
                "signup_at 2027-01-01T00:00:00Z is later than the reference time 2026-06-01T00:00:00Z (--now)"
            ),
            row(7, "acquisition_channel", "acquisition_channel is empty"),
        ]
    );
    assert_eq!(
        rejects(&loaded, Table::Courses),
        vec![
            row(2, "level", "level is empty"),
            row(3, "lessons", "lessons must be a whole number > 0, got 0"),
            row(
                4,
                "course_id",
                "duplicate course_id \"C1\" (first at row 1)"
            ),
            row(5, "lessons", "lessons must be a whole number > 0, got 2.5"),
        ]
    );
    assert_eq!(
        rejects(&loaded, Table::Events),
        vec![
            row(
                4,
                "learner_id",
                "unknown learner_id \"L9\" (not in learners)"
            ),
            row(5, "course_id", "unknown course_id \"C7\" (not in courses)"),
            row(
                6,
                "event_type",
                "\"Clicks!\" is not a known event type nor a valid custom one (1 to 64 characters among a-z, 0-9, _ . - :, starting with a letter; known: login, video_watch, lesson_complete, quiz_attempt, forum_post, checkin, live_class, refund_page_view, support_ticket, payment, course_enroll, coupon_redeem, subscription_cancel)"
            ),
            row(
                7,
                "ts",
                "ts: unparsable timestamp \"yesterday\" (expected RFC 3339, e.g. 2026-01-31T08:00:00Z)"
            ),
            row(
                8,
                "ts",
                "ts 2026-07-01T00:00:00Z is later than the reference time 2026-06-01T00:00:00Z (--now)"
            ),
            row(
                9,
                "ts",
                "ts 2026-01-09T00:00:00Z is before the learner's signup_at 2026-01-10T08:00:00Z"
            ),
            row(10, "duration_s", "negative duration_s: -5"),
            row(11, "score", "score 1.5 is outside [0, 1]"),
            row(12, "amount", "negative amount: -29"),
            row(13, "latency_ms", "negative latency_ms: -3"),
            row(14, "stalls", "negative stalls: -1"),
            row(
                15,
                "learner_id",
                "learner_id \"L3\" was rejected in learners (row 4)"
            ),
            row(
                16,
                "course_id",
                "course_id \"C2\" was rejected in courses (row 2)"
            ),
            row(17, "duration_s", "duration_s is not a number: \"abc\""),
            row(18, "stalls", "stalls must be a whole number, got 1.5"),
            row(
                19,
                "duration_s",
                "duration_s must be a finite number, got NaN"
            ),
        ]
    );
    assert_eq!(
        rejects(&loaded, Table::Assignments),
        vec![
            row(
                3,
                "learner_id",
                "learner \"L1\" assigned twice in experiment \"E1\" (first at row 1)"
            ),
            row(
                4,
                "learner_id",
                "unknown learner_id \"L9\" (not in learners)"
            ),
            row(5, "propensity", "propensity 0 is outside (0, 1]"),
            row(6, "propensity", "propensity 1.2 is outside (0, 1]"),
            row(7, "arm", "arm is empty"),
            row(8, "churned", "churned must be 0 or 1, got \"2\""),
        ]
    );

    let d = &loaded.dataset;
    assert_eq!(
        d.learners.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["L1", "L2"]
    );
    assert_eq!(
        d.learners[1].device, None,
        "an empty optional value is absent"
    );
    assert_eq!(d.courses.len(), 1);
    assert_eq!(d.events.len(), 3);
    assert!(
        d.events[0].duration_s.is_nan(),
        "absent measures are NaN, never 0"
    );
    assert_eq!(d.events[1].duration_s, 600.0);
    assert_eq!(d.assignments.len(), 2);
    assert_eq!(d.assignments[1].churned, Some(true));
}

#[test]
fn rejects_file_keeps_the_rows_values() {
    let dir = fixture();
    let loaded = load_dir(dir.path(), &now()).expect("loads");
    let out = tempfile::tempdir().expect("tempdir");
    let written = loaded.report.write_rejects(out.path()).expect("writes");
    assert_eq!(written.len(), 4);
    let text = std::fs::read_to_string(out.path().join("rejects/courses.csv")).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,field,reason,course_id,level,lessons");
    assert_eq!(lines[1], "2,level,level is empty,C2, ,12");
    assert_eq!(lines.len(), 5);
}

#[test]
fn a_missing_column_is_one_error_naming_file_and_column() {
    let dir = fixture();
    write(dir.path(), "courses.csv", "course_id,level\nC1,beginner\n");
    let err = load_dir(dir.path(), &now()).unwrap_err();
    assert!(
        matches!(&err, DataError::MissingColumn { column, .. } if column == "lessons"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("courses.csv") && message.contains("\"lessons\""),
        "{message}"
    );
}

#[test]
fn a_text_column_where_nothing_parses_is_a_wrong_type() {
    let dir = fixture();
    write(
        dir.path(),
        "courses.csv",
        "course_id,level,lessons\nC1,beginner,ten\nC2,beginner,twelve\n",
    );
    let err = load_dir(dir.path(), &now()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::WrongType { .. }), "{message}");
    assert!(
        message.contains("courses.csv")
            && message.contains("\"lessons\"")
            && message.contains("\"ten\" at row 1"),
        "{message}"
    );
}

#[test]
fn a_parquet_column_of_the_wrong_type_is_named() {
    use polars::prelude::*;
    let dir = fixture();
    std::fs::remove_file(dir.path().join("learners.csv")).expect("remove");
    let mut df = df!(
        "learner_id" => ["L1"],
        "signup_at" => [1.5f64],
        "plan" => ["free"],
        "acquisition_channel" => ["organic"]
    )
    .expect("frame");
    let file = std::fs::File::create(dir.path().join("learners.parquet")).expect("create");
    ParquetWriter::new(file).finish(&mut df).expect("write");
    let err = load_dir(dir.path(), &now()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::WrongType { .. }), "{message}");
    assert!(
        message.contains("learners.parquet")
            && message.contains("\"signup_at\"")
            && message.contains("timestamp"),
        "{message}"
    );
}

#[test]
fn directory_problems_are_clear() {
    let dir = fixture();
    write(dir.path(), "events.parquet", "not really parquet");
    let err = load_dir(dir.path(), &now()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::AmbiguousTable {
                table: Table::Events,
                ..
            }
        ),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("events.csv")).expect("remove");
    let err = load_dir(dir.path(), &now()).unwrap_err();
    assert!(
        matches!(err, DataError::Read { .. }),
        "a corrupt Parquet file is a read error: {err}"
    );

    std::fs::remove_file(dir.path().join("events.parquet")).expect("remove");
    let err = load_dir(dir.path(), &now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "data directory {} has no events.csv or events.parquet",
            dir.path().display()
        )
    );

    let err = load_dir(&dir.path().join("nope"), &now()).unwrap_err();
    assert!(matches!(err, DataError::NotADirectory(_)));
}

#[test]
fn assignments_are_optional() {
    let dir = fixture();
    std::fs::remove_file(dir.path().join("assignments.csv")).expect("remove");
    let loaded = load_dir(dir.path(), &now()).expect("loads");
    assert!(loaded.report.table(Table::Assignments).is_none());
    assert!(loaded.dataset.assignments.is_empty());
}

#[test]
fn counts_custom_types_course_ends_and_open_vocabularies_round_trip() {
    use churn_core::{Course, Dataset, Event, EventKind, EventType, Learner};
    use churn_data::{Format, write_dataset};
    let signup = parse_timestamp("2026-01-01T00:00:00Z").expect("time");
    let mut login = Event::new(signup + 3_600_000, 0, EventType::Login);
    login.count = 4;
    login.course = 0;
    let custom = Event::new(
        signup + 7_200_000,
        0,
        EventKind::Custom {
            index: 0,
            activity: true,
        },
    );
    let dataset = Dataset {
        learners: vec![Learner {
            id: "L1".into(),
            signup_at: signup,
            plan: "Pro Annual".into(),
            acquisition_channel: "partner".into(),
            device: Some("tablet".into()),
            numeric_attributes: vec![60.0],
            categorical_attributes: vec![Some("North Region".into()), None],
        }],
        courses: vec![
            Course {
                id: "C1".into(),
                level: "expert".into(),
                lessons: 3,
                ends_at: Some(signup + 90 * churn_core::DAY_MS),
                starts_at: Some(signup),
            },
            Course {
                id: "C2".into(),
                level: "Beginner".into(),
                lessons: 5,
                ends_at: None,
                starts_at: None,
            },
        ],
        events: vec![login, custom],
        custom_event_types: vec!["video_play".into()],
        assignments: Vec::new(),
        deadlines: vec![churn_core::Deadline {
            course: 1,
            due_at: signup + 30 * churn_core::DAY_MS,
            event_type: EventType::QuizAttempt,
        }],
        attributes: churn_core::LearnerAttributes {
            numeric: vec!["credits".into()],
            categorical: vec!["region".into(), "age_band".into()],
        },
    };
    for format in [Format::Csv, Format::Parquet] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dataset(&dataset, dir.path(), format).expect("written");
        write(
            dir.path(),
            "contract.toml",
            "[events]\nactivity = [\"video_play\"]\n[learners]\nnumeric = [\"credits\"]\ncategorical = [\"region\", \"age_band\"]\n",
        );
        let loaded = load_dir(dir.path(), &now()).expect("loads");
        assert_eq!(loaded.report.total_rejected(), 0, "{format:?}");
        let d = &loaded.dataset;
        assert_eq!(d.learners, dataset.learners, "{format:?}");
        assert_eq!(d.attributes, dataset.attributes, "{format:?}");
        assert_eq!(d.deadlines, dataset.deadlines, "{format:?}");
        assert_eq!(d.courses, dataset.courses, "{format:?}");
        assert_eq!(d.custom_event_types, dataset.custom_event_types);
        assert_eq!(
            format!("{:?}", d.events),
            format!("{:?}", dataset.events),
            "{format:?}"
        );
    }
}
