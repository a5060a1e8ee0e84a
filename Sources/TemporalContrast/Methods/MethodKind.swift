/// The methods `objective.kind` can name.
public enum MethodKind: String, Sendable, CaseIterable, Codable {
    /// MoCo v2: momentum key encoder and a queue of past keys as negatives.
    case moco
    /// SimCLR's NT-Xent: in-batch InfoNCE over both views.
    case infonce
    /// VICReg: invariance, variance and covariance terms, no negatives.
    case vicreg
    /// PIRL: NCE against a memory bank of running-average embeddings.
    case pirl
    /// Barlow Twins: the cross-correlation of the two views' embeddings pushed to the identity.
    case barlow
    /// BYOL: a predictor regresses a momentum target network's projection of the other view.
    case byol
    /// SimSiam: a predictor regresses the other view's projection, held constant.
    case simsiam
    /// DINO: a student matches the centred, sharpened output of an EMA teacher over prototypes.
    case dino
    /// SwAV: each view predicts the other's Sinkhorn-balanced assignment to prototypes.
    case swav

    /// Whether the projection head ends with L2 normalisation (the contrastive methods); the
    /// others work on raw projections and normalise inside their loss when they need to.
    public var normalizesHead: Bool {
        switch self {
        case .moco, .infonce, .pirl: true
        case .vicreg, .barlow, .byol, .simsiam, .dino, .swav: false
        }
    }

    /// Builds the method for `online` (already drawn from `rng`); draws its own initial state
    /// (a random key queue, a random bank) from `rng` after the learner's networks.
    public func make(config: LearnerConfig, online: EmbeddingNetwork, rng: inout RandomSource) -> JointEmbeddingMethod {
        let s = config.methodSettings
        switch self {
        case .moco:
            return MoCo(online: online, queue: config.queue, momentum: config.keyMomentum, temperature: config.temperature,
                        maskWindow: config.maskWindow, embedding: config.embedding, rng: &rng)
        case .infonce:
            return SimCLR(temperature: config.temperature, maskWindow: config.maskWindow, embedding: config.embedding)
        case .vicreg:
            return VICReg(loss: VICRegLoss(invariance: Float(s["vicreg_invariance"]), variance: Float(s["vicreg_variance"]),
                                           covariance: Float(s["vicreg_covariance"])), embedding: config.embedding)
        case .pirl:
            return PIRL(bank: Int(s["pirl_bank"]), negatives: Int(s["pirl_negatives"]), lambda: Float(s["pirl_lambda"]),
                        bankMomentum: Float(s["pirl_bank_momentum"]), temperature: config.temperature, maskWindow: config.maskWindow,
                        embedding: config.embedding, seed: config.seed, rng: &rng)
        case .barlow:
            return BarlowTwins(lambda: Float(s["barlow_lambda"]), embedding: config.embedding)
        case .byol:
            return BYOL(online: online, hidden: s[integer: "byol_predictor_hidden"], momentum: Float(s["byol_momentum"]),
                        embedding: config.embedding, rng: &rng)
        case .simsiam:
            return SimSiam(hidden: s[integer: "simsiam_predictor_hidden"], embedding: config.embedding, rng: &rng)
        case .dino:
            return DINO(online: online, prototypes: s[integer: "dino_prototypes"], studentTemperature: Float(s["dino_student_temperature"]),
                        teacherTemperature: Float(s["dino_teacher_temperature"]), centreMomentum: Float(s["dino_centre_momentum"]),
                        momentum: Float(s["dino_momentum"]), embedding: config.embedding, rng: &rng)
        case .swav:
            return SwAV(prototypes: s[integer: "swav_prototypes"], temperature: Float(s["swav_temperature"]), epsilon: Float(s["swav_epsilon"]),
                        queue: s[integer: "swav_queue"], freezeSteps: s[integer: "swav_freeze_steps"], embedding: config.embedding, rng: &rng)
        }
    }

    /// Every method's own settings (the shared ones, such as the temperature and the key
    /// momentum, are `LearnerConfig`'s), with the defaults of its paper.
    public static let settings: [MethodSetting] = [
        MethodSetting("vicreg_invariance", 25, lower: 0, upper: 1000, help: "VICReg: weight λ of the invariance (mean squared distance) term"),
        MethodSetting("vicreg_variance", 25, lower: 0, upper: 1000, help: "VICReg: weight μ of the variance (hinge on each dimension's std) term"),
        MethodSetting("vicreg_covariance", 1, lower: 0, upper: 1000, help: "VICReg: weight ν of the covariance (off-diagonal) term"),
        MethodSetting("pirl_bank", 16_384, lower: 2, upper: 4_194_304, integer: true,
                      help: "PIRL: memory bank slots; an instance is a source's stretch of objective.mask_window seconds, hashed to a slot"),
        MethodSetting("pirl_negatives", 4096, lower: 1, upper: 65_536, integer: true, help: "PIRL: bank entries drawn as negatives per pair"),
        MethodSetting("pirl_lambda", 0.5, lower: 0, upper: 1, help: "PIRL: weight of the transformed-view NCE term (1 − λ weighs the anchor's)"),
        MethodSetting("pirl_bank_momentum", 0.5, lower: 0, upper: 1, upperOpen: true, help: "PIRL: a bank entry keeps this much of itself at each update"),
        MethodSetting("barlow_lambda", 0.0051, lower: 0, upper: 10, help: "Barlow Twins: weight λ of the off-diagonal (redundancy) terms"),
        MethodSetting("byol_momentum", 0.996, lower: 0, upper: 1, upperOpen: true, help: "BYOL: EMA momentum of the target network (the paper's base value)"),
        MethodSetting("byol_predictor_hidden", 512, lower: 1, upper: 8192, integer: true, help: "BYOL: hidden width of the predictor MLP"),
        MethodSetting("simsiam_predictor_hidden", 32, lower: 1, upper: 8192, integer: true,
                      help: "SimSiam: hidden width of the predictor MLP (the paper's bottleneck: a quarter of the embedding)"),
        MethodSetting("dino_prototypes", 4096, lower: 2, upper: 262_144, integer: true, help: "DINO: prototypes K of the last layer (the paper's 65536 is for ImageNet)"),
        MethodSetting("dino_student_temperature", 0.1, lower: 0.001, upper: 10, help: "DINO: student softmax temperature"),
        MethodSetting("dino_teacher_temperature", 0.04, lower: 0.001, upper: 10, help: "DINO: teacher softmax temperature (sharpening)"),
        MethodSetting("dino_centre_momentum", 0.9, lower: 0, upper: 1, upperOpen: true, help: "DINO: momentum of the centre subtracted from the teacher's output"),
        MethodSetting("dino_momentum", 0.996, lower: 0, upper: 1, upperOpen: true, help: "DINO: EMA momentum of the teacher (the paper's base value)"),
        MethodSetting("swav_prototypes", 1024, lower: 2, upper: 65_536, integer: true, help: "SwAV: prototypes K (the paper's 3000 is for ImageNet)"),
        MethodSetting("swav_temperature", 0.1, lower: 0.001, upper: 10, help: "SwAV: softmax temperature of the swapped prediction"),
        MethodSetting("swav_epsilon", 0.05, lower: 0.001, upper: 10, help: "SwAV: Sinkhorn-Knopp entropy regularisation ε"),
        MethodSetting("swav_queue", 0, lower: 0, upper: 262_144, integer: true, help: "SwAV: past projections joined to the batch for the codes once full (0: none; stale early projections let the batch crowd onto a few prototypes)"),
        MethodSetting("swav_freeze_steps", 313, lower: 0, upper: 100_000_000, integer: true, help: "SwAV: steps at the start with the prototypes frozen"),
    ]
}

/// A method's own numeric setting: a key in the config's `[objective]` table, its default, its
/// valid range and what it does.
public struct MethodSetting: Sendable {
    public let key: String
    public let defaultValue: Double
    public let lower: Double, upper: Double
    public let upperOpen: Bool
    public let integer: Bool
    public let help: String

    init(_ key: String, _ defaultValue: Double, lower: Double, upper: Double, upperOpen: Bool = false, integer: Bool = false, help: String) {
        self.key = key
        self.defaultValue = defaultValue
        self.lower = lower
        self.upper = upper
        self.upperOpen = upperOpen
        self.integer = integer
        self.help = help
    }
}

/// The values of every method's settings, by key; unset keys hold their defaults.
public struct MethodSettings: Sendable, Equatable {
    private var values: [String: Double] = [:]

    public init() {}

    public subscript(key: String) -> Double {
        get {
            if let v = values[key] { return v }
            guard let setting = MethodKind.settings.first(where: { $0.key == key }) else { preconditionFailure("no method setting \(key)") }
            return setting.defaultValue
        }
        set { values[key] = newValue }
    }

    /// An integer setting (`MethodSetting.integer`), for the config's integer fields.
    public subscript(integer key: String) -> Int { Int(self[key]) }

    /// Equal when every setting has the same value, set or default.
    public static func == (a: MethodSettings, b: MethodSettings) -> Bool {
        MethodKind.settings.allSatisfy { a[$0.key] == b[$0.key] }
    }
}
