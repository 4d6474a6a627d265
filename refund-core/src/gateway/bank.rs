//! PortOne V2's `Bank` enum: the names a V2 refund account's `bank` may
//! carry.
//!
//! Written out by hand from the V2 schema's `Bank` enum, in its order; a
//! test compares it with the reference schema so the two cannot drift.

/// Every `Bank` name the PortOne V2 schema defines.
pub const PORTONE_BANKS: [&str; 78] = [
    "BANK_OF_KOREA",
    "KDB",
    "IBK",
    "KOOKMIN",
    "SUHYUP",
    "KEXIM",
    "NONGHYUP",
    "LOCAL_NONGHYUP",
    "WOORI",
    "STANDARD_CHARTERED",
    "CITI",
    "DAEGU",
    "BUSAN",
    "KWANGJU",
    "JEJU",
    "JEONBUK",
    "KYONGNAM",
    "KFCC",
    "SHINHYUP",
    "SAVINGS_BANK",
    "MORGAN_STANLEY",
    "HSBC",
    "DEUTSCHE",
    "JPMC",
    "MIZUHO",
    "MUFG",
    "BANK_OF_AMERICA",
    "BNP_PARIBAS",
    "ICBC",
    "BANK_OF_CHINA",
    "NFCF",
    "UOB",
    "BOCOM",
    "CCB",
    "POST",
    "KODIT",
    "KIBO",
    "HANA",
    "SHINHAN",
    "K_BANK",
    "KAKAO",
    "TOSS",
    "MISC_FOREIGN",
    "SGI",
    "KCIS",
    "YUANTA_SECURITIES",
    "KB_SECURITIES",
    "SANGSANGIN_SECURITIES",
    "HANYANG_SECURITIES",
    "LEADING_SECURITIES",
    "BNK_SECURITIES",
    "IBK_SECURITIES",
    "DAOL_SECURITIES",
    "MIRAE_ASSET_SECURITIES",
    "SAMSUNG_SECURITIES",
    "KOREA_SECURITIES",
    "NH_SECURITIES",
    "KYOBO_SECURITIES",
    "HI_SECURITIES",
    "HYUNDAI_MOTOR_SECURITIES",
    "KIWOOM_SECURITIES",
    "EBEST_SECURITIES",
    "SK_SECURITIES",
    "DAISHIN_SECURITIES",
    "HANHWA_SECURITIES",
    "HANA_SECURITIES",
    "TOSS_SECURITIES",
    "SHINHAN_SECURITIES",
    "DB_SECURITIES",
    "EUGENE_SECURITIES",
    "MERITZ_SECURITIES",
    "KAKAO_PAY_SECURITIES",
    "BOOKOOK_SECURITIES",
    "SHINYOUNG_SECURITIES",
    "CAPE_SECURITIES",
    "KOREA_SECURITIES_FINANCE",
    "KOREA_FOSS_SECURITIES",
    "WOORI_INVESTMENT_BANK",
];

/// True when `name` is one of [`PORTONE_BANKS`] (exactly: the names are
/// upper case and V2 does not fold them).
pub fn is_portone_bank(name: &str) -> bool {
    PORTONE_BANKS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::{is_portone_bank, PORTONE_BANKS};

    #[test]
    fn the_list_is_the_schemas_bank_enum() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/portone-v2-openapi-cancel-subset.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            // The reference schema lives beside the repository, not in it
            // (a fresh clone has none): skipped loudly. The V2 tests of
            // refund-actix check every name against the sandbox's own
            // transcription of the schema instead, everywhere.
            eprintln!("!!!!! SKIPPED: the V2 reference schema is not at {path} !!!!!");
            return;
        };
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = schema["components"]["schemas"]["Bank"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(names, PORTONE_BANKS);
    }

    #[test]
    fn names_match_exactly() {
        assert!(is_portone_bank("SHINHAN"));
        assert!(is_portone_bank("KAKAO_PAY_SECURITIES"));
        for other in ["shinhan", "088", "88", "", "SHINHAN ", "BANK"] {
            assert!(!is_portone_bank(other), "{other:?}");
        }
    }
}
