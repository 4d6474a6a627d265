//! The V2 `Bank` enum: the only bank names a V2 refund account may carry.

/// Every `Bank` value of the V2 schema, in its order.
pub(crate) const BANKS: &[&str] = &[
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

/// Whether `name` is a V2 `Bank` value (exact, case-sensitive, as the API
/// matches enum values).
pub(crate) fn is_bank(name: &str) -> bool {
    BANKS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_names_are_known_and_v1_codes_are_not() {
        assert_eq!(BANKS.len(), 78);
        assert!(is_bank("SHINHAN") && is_bank("KOOKMIN") && is_bank("WOORI_INVESTMENT_BANK"));
        assert!(!is_bank("088") && !is_bank("shinhan") && !is_bank(""));
    }
}
