//! The templates and the data each one shows. Every page extends
//! `base.html`, which needs the support address and, when there is one, the
//! reference code to quote.

use crate::plans::Plan;
use askama::Template;
use askama_web::WebTemplate;

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct Home {
    pub support_email: String,
    pub reference: Option<String>,
    pub plans: Vec<Plan>,
    pub chosen_plan: String,
    pub email: String,
    pub token: String,
    pub errors: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
pub struct Message {
    pub support_email: String,
    pub reference: Option<String>,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub link_href: Option<String>,
    pub link_text: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "status.html")]
pub struct Status {
    pub support_email: String,
    pub reference: Option<String>,
    /// The situation's name (`data-situation`, for tests and styling).
    pub situation: &'static str,
    pub page: crate::situation::Page,
    pub code: String,
    pub refresh_seconds: u32,
}

#[derive(Template, WebTemplate)]
#[template(path = "status_form.html")]
pub struct StatusForm {
    pub support_email: String,
    pub reference: Option<String>,
    pub email: String,
    pub error: Option<String>,
}

pub const STYLESHEET: &str = include_str!("../../templates/style.css");
