// Texts of the dashboard in Simplified Chinese (the default: regulators' operators) and
// English. The choice is kept in localStorage so a reload or a new tab keeps it.
// Alert titles come from the service already written in its configured locale.

const STORAGE_KEY = "riskwatch.lang";

const ZH = {
  app_title: "riskwatch 风险监测",
  nav_alerts: "预警", nav_enterprises: "企业", nav_silences: "静默", nav_onboarding: "接入检查",
  login: "登录", logout: "退出", username: "用户名", password: "密码",
  login_title: "登录监测中心", bad_credentials: "用户名或密码错误",
  read_only: "只读", mute: "静音", unmute: "取消静音",
  health: "MQTT {mqtt} · 消息 {messages} · 数据点 {samples} · 隔离 {quarantined} · 活动预警 {open}",
  mqtt_up: "已连接", mqtt_down: "未连接", mqtt_none: "无数据源",
  unavailable: "服务不可用：{error}", connecting: "正在连接…",
  live_on: "实时", live_off: "实时推送未连接，定时刷新",
  // board
  alerts_title: "预警列表", level: "等级", state: "状态", stage: "处置阶段", title: "标题",
  enterprise: "企业", kind: "类型", started: "开始", detected: "发现", resolved: "解除",
  region: "区划代码", any: "全部", filter: "筛选", reset: "重置",
  no_alerts: "暂无预警。模拟数据中的异常通常在启动后一分钟内出现。",
  page_of: "第 {from}–{to} 条，共 {total} 条", prev: "上一页", next: "下一页",
  // detail
  back: "返回", device: "设备", point: "测点", assignee: "处置人", acknowledged: "确认时间",
  closed: "销号时间", evidence: "证据", evidence_json: "证据详情（JSON）", history: "处置记录",
  actions: "处置", comment: "意见", at: "时间", actor: "操作人", action: "动作",
  from_to: "阶段变化", no_history: "暂无记录", no_series: "证据中没有曲线数据",
  needs_comment: "该操作需要填写意见", needs_assignee: "该操作需要填写处置人",
  not_found: "未找到", declared_stop: "申报停产", alert_start: "开始", alert_detect: "发现",
  producing_flag: "生产状态（1=生产）", silent_since: "静默开始",
  // enterprises
  enterprises_title: "企业", open_alerts: "未处理预警", devices: "设备",
  online: "在线", offline: "离线", producing: "生产", stopped: "停产",
  declared_stopped: "申报停产", no_risk: "无预警", last_seen: "最后数据", silent: "静默",
  status: "状态", declared_periods: "申报状态", reason: "原因", from: "起", to: "止",
  industry_dust: "粉尘涉爆", industry_metallurgy: "金属冶炼",
  plant_production: "生产", plant_standby: "待机", plant_off: "停机",
  suspicion: "疑似明停暗开", suspicion_hint: "申报停产期间电表显示生产",
  declared_state_stopped: "停产", declared_state_running: "正常生产",
  source: "来源", source_registry: "登记", source_api: "申报",
  registry_read_only: "企业登记信息中的申报，此处只读", declared_by: "申报人",
  withdrawn: "撤回人", withdraw: "撤回", withdrawn_ok: "已撤回", no_declared: "暂无申报",
  declare: "申报", reason_example: "如：停产整顿", reason_needed: "请填写原因",
  bad_time: "请填写起止时间", time_zone: "时区",
  series_title: "运行曲线", range: "时间范围", no_series_api: "曲线接口不可用",
  no_series_data: "该时段没有数据", alerts_of: "该企业的预警",
  // silences
  silences_title: "静默规则", matchers: "匹配条件", starts: "开始", ends: "结束",
  created_by: "创建人", expire: "提前结束", expired_by: "结束人", create: "新建静默", duration_h: "时长（小时）",
  silence_state_active: "生效中", silence_state_scheduled: "未开始", silence_state_expired: "已结束",
  matchers_needed: "至少填写一个匹配条件", no_silences: "暂无静默规则",
  // onboarding
  onboarding_title: "接入检查", quarantine: "隔离消息", received: "接收时间",
  topic: "主题", payload: "内容", no_quarantine: "没有被拒收的消息", arriving: "数据到达",
  yes: "是", no: "否",
  saved: "已保存", error: "错误",
};

const EN = {
  app_title: "riskwatch risk monitoring",
  nav_alerts: "Alerts", nav_enterprises: "Enterprises", nav_silences: "Silences",
  nav_onboarding: "Onboarding",
  login: "Log in", logout: "Log out", username: "Username", password: "Password",
  login_title: "Monitoring centre login", bad_credentials: "Wrong username or password",
  read_only: "read-only", mute: "Mute", unmute: "Unmute",
  health: "MQTT {mqtt} · messages {messages} · samples {samples} · quarantined {quarantined} · open alerts {open}",
  mqtt_up: "connected", mqtt_down: "disconnected", mqtt_none: "no source",
  unavailable: "Service unavailable: {error}", connecting: "Connecting…",
  live_on: "live", live_off: "live push down, polling",
  alerts_title: "Alerts", level: "Level", state: "State", stage: "Stage", title: "Title",
  enterprise: "Enterprise", kind: "Kind", started: "Started", detected: "Detected",
  resolved: "Resolved", region: "Region code", any: "Any", filter: "Filter", reset: "Reset",
  no_alerts: "No alerts. Simulated incidents usually appear within a minute of start-up.",
  page_of: "{from}–{to} of {total}", prev: "Previous", next: "Next",
  back: "Back", device: "Device", point: "Point", assignee: "Assignee",
  acknowledged: "Acknowledged", closed: "Closed", evidence: "Evidence",
  evidence_json: "Evidence (JSON)", history: "Audit trail", actions: "Handling",
  comment: "Comment", at: "At", actor: "Actor", action: "Action", from_to: "Stage",
  no_history: "No records", no_series: "The evidence holds no curve",
  needs_comment: "This action needs a comment", needs_assignee: "This action needs an assignee",
  not_found: "Not found", declared_stop: "Declared stopped", alert_start: "start",
  alert_detect: "detected", producing_flag: "Producing (1 = yes)", silent_since: "silent since",
  enterprises_title: "Enterprises", open_alerts: "Open alerts", devices: "Devices",
  online: "Online", offline: "Offline", producing: "Producing", stopped: "Stopped",
  declared_stopped: "Declared stopped", no_risk: "No alerts", last_seen: "Last data",
  silent: "Silent", status: "Status", declared_periods: "Declared status", reason: "Reason",
  from: "From", to: "To", industry_dust: "Dust explosion", industry_metallurgy: "Metallurgy",
  plant_production: "Producing", plant_standby: "Standby", plant_off: "Off",
  suspicion: "Suspected hidden operation",
  suspicion_hint: "The meter shows production during a declared stop",
  declared_state_stopped: "Stopped", declared_state_running: "Running",
  source: "Source", source_registry: "Registry", source_api: "Declared",
  registry_read_only: "From the enterprise registry; read-only here", declared_by: "Declared by",
  withdrawn: "Withdrawn", withdraw: "Withdraw", withdrawn_ok: "Withdrawn",
  no_declared: "No declarations", declare: "Declare", reason_example: "e.g. rectification",
  reason_needed: "Give a reason", bad_time: "Give a start and an end", time_zone: "Time zone",
  series_title: "Curves", range: "Range", no_series_api: "Series API unavailable",
  no_series_data: "No data in this range", alerts_of: "Alerts of this enterprise",
  silences_title: "Silences", matchers: "Matchers", starts: "Starts", ends: "Ends",
  created_by: "Created by", expire: "Expire", expired_by: "Expired by", create: "New silence",
  duration_h: "Duration (hours)", silence_state_active: "active",
  silence_state_scheduled: "scheduled", silence_state_expired: "expired",
  matchers_needed: "Give at least one matcher", no_silences: "No silences",
  onboarding_title: "Onboarding check", quarantine: "Quarantined messages",
  received: "Received", topic: "Topic", payload: "Payload",
  no_quarantine: "No refused messages", arriving: "Data arriving", yes: "yes", no: "no",
  saved: "Saved", error: "Error",
};

// Domain vocabularies, by code, used by several pages.
const LEVELS = { zh: { 1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色" },
                 en: { 1: "Red", 2: "Orange", 3: "Yellow", 4: "Blue" } };
const STATES = {
  zh: { firing: "预警中", acknowledged: "已确认", resolved: "已解除", closed: "已销号" },
  en: { firing: "firing", acknowledged: "acknowledged", resolved: "resolved", closed: "closed" },
};
const KINDS = {
  zh: { threshold: "超限", device_offline: "设备离线", rate_of_change: "变化过快",
        hidden_operation: "明停暗开", fake_offline: "虚假离线", interlock_violation: "联锁异常",
        flatline: "数据冻结", replay: "数据重放", abnormal_condition: "异常工况" },
  en: { threshold: "limit", device_offline: "device offline", rate_of_change: "rate of change",
        hidden_operation: "hidden operation", fake_offline: "offline faking",
        interlock_violation: "interlock", flatline: "flatline", replay: "replayed data",
        abnormal_condition: "abnormal condition" },
};
const STAGES = {
  zh: { pending: "待响应", acknowledged: "已确认", dispatched: "已派单", feedback: "已反馈",
        verified: "已核查", closed: "已销号" },
  en: { pending: "pending", acknowledged: "acknowledged", dispatched: "dispatched",
        feedback: "feedback", verified: "verified", closed: "closed" },
};
const ACTIONS = {
  zh: { acknowledge: "确认", dispatch: "派单", feedback: "反馈", verify: "核查通过",
        reject: "核查退回", close: "销号", dismiss: "误报关闭", comment: "备注",
        created: "创建", updated: "更新", resolved: "解除", reopened: "重新触发",
        flapping: "频繁波动", flapping_ended: "波动结束", escalated: "升级通知",
        silenced: "已静默", inhibited: "已抑制" },
  en: { acknowledge: "Acknowledge", dispatch: "Dispatch", feedback: "Feedback",
        verify: "Verify", reject: "Reject", close: "Close", dismiss: "Dismiss",
        comment: "Comment" },
};

let lang = readStoredLang();

function readStoredLang() {
  try {
    return localStorage.getItem(STORAGE_KEY) === "en" ? "en" : "zh";
  } catch {
    return "zh"; // storage disabled (private mode): the default is fine
  }
}

export function getLang() { return lang; }

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  try { localStorage.setItem(STORAGE_KEY, lang); } catch { /* not persisted, still applied */ }
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

/** The text for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = (lang === "en" ? EN : ZH)[key] ?? ZH[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// An unknown code shows as itself: new kinds or system actions stay readable.
const pick = (table, code) => table[lang]?.[code] ?? String(code ?? "");
export const levelName = (level) => pick(LEVELS, level);
export const stateName = (state) => pick(STATES, state);
export const kindName = (kind) => pick(KINDS, kind);
export const stageName = (stage) => pick(STAGES, stage);
export const actionName = (action) => pick(ACTIONS, action);
export const KIND_CODES = Object.keys(KINDS.zh);
